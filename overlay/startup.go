//go:build linux

package overlay

// At start-up the daemon re-creates its networks and endpoints before it
// joins the cluster, and an overlay network cannot come up without it (the
// VTEP address, the underlay's MTU). Those calls wait here and are made
// again once SetCluster gives the driver its cluster; meanwhile what was
// running keeps running (kernel objects and eBPF pins outlive the daemon).

import (
	"context"
	"time"

	"github.com/netd-dev/netd/dataplane"
)

// waitList is what waits for the cluster. Guarded by Driver.mu.
type waitList struct {
	nets map[string]*dataplane.NetworkConfig
	eps  map[string]map[string]*dataplane.EndpointConfig // network ID -> endpoint ID ->
}

func newWaitList() waitList {
	return waitList{nets: map[string]*dataplane.NetworkConfig{}, eps: map[string]map[string]*dataplane.EndpointConfig{}}
}

func (w *waitList) drop(id string) {
	delete(w.nets, id)
	delete(w.eps, id)
}

func (w *waitList) empty() bool { return len(w.nets) == 0 }

// wait keeps n for SetCluster if it is a network of the cluster (it has a
// VNI) and the driver has no cluster yet.
func (d *Driver) wait(n *dataplane.NetworkConfig) bool {
	if _, err := StateOf(n); err != nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cluster != nil {
		return false
	}
	c := *n
	d.waiting.nets[n.ID] = &c
	d.log.Info("overlay network waits for this host to join the cluster; what runs of it keeps running", "network", n.Name)
	return true
}

// waitEndpoint keeps ep for SetCluster if its network waits.
func (d *Driver) waitEndpoint(n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.waiting.nets[n.ID]; !ok {
		return false
	}
	if d.waiting.eps[n.ID] == nil {
		d.waiting.eps[n.ID] = map[string]*dataplane.EndpointConfig{}
	}
	c := *ep
	d.waiting.eps[n.ID][ep.ID] = &c
	return true
}

func (d *Driver) unwaitEndpoint(n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.waiting.eps[n.ID], ep.ID)
}

// bringUpWaiting makes the calls that waited, now that there is a cluster.
func (d *Driver) bringUpWaiting() {
	d.mu.Lock()
	w := d.waiting
	d.waiting = newWaitList()
	d.mu.Unlock()
	for id, n := range w.nets {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := d.CreateNetwork(ctx, n)
		for _, ep := range w.eps[id] {
			if err != nil {
				break
			}
			if err = d.CreateEndpoint(ctx, n, ep); err == nil {
				err = d.Join(ctx, n, ep)
			}
		}
		cancel()
		if err != nil {
			d.log.Error("overlay: bring up network after joining the cluster", "network", n.Name, "err", err)
			continue
		}
		d.log.Info("overlay network up after joining the cluster", "network", n.Name, "endpoints", len(w.eps[id]))
	}
}

func (d *Driver) networkWaits(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.waiting.nets[id]
	return ok
}
