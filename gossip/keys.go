package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Key operations, applied on every live member (serf's key manager):
// install a new key everywhere, make it the primary everywhere, then
// remove the old one. Each node saves its keyring, so a restart keeps the
// rotated keys.
const (
	KeyInstall = "install"
	KeyUse     = "use"
	KeyRemove  = "remove"
	KeyList    = "list"
)

// KeyReply is one node's answer to a key operation.
type KeyReply struct {
	Node string
	Err  string
	Keys []string // base64, primary first (list)
}

// KeyResult is the cluster's answer to a key operation.
type KeyResult struct {
	Op      string
	Members int // live members asked, this node included
	Replies []KeyReply
	// Keys counts, per key (base64), the nodes that hold it; Primary the
	// nodes that use it as primary.
	Keys    map[string]int
	Primary map[string]int
}

// Failed lists the nodes that refused or did not answer.
func (r KeyResult) Failed() []string {
	var out []string
	for _, rep := range r.Replies {
		if rep.Err != "" {
			out = append(out, rep.Node+": "+rep.Err)
		}
	}
	return out
}

func (c *Cluster) keyringPath() string {
	if c.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(c.cfg.StateDir, "keyring.json")
}

// loadKeys returns the keyring to start with: the one saved by a rotation,
// else the configured key. A configured key missing from a saved keyring
// is added (an operator handing out a new key file must not be ignored).
func (c *Cluster) loadKeys() ([][]byte, error) {
	keys := slices.Clone(c.cfg.Keys)
	p := c.keyringPath()
	if p == "" {
		return keys, nil
	}
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return keys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read gossip keyring: %w", err)
	}
	var saved []string
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("gossip keyring %s is damaged (%v): remove it to start from --gossip-key-file", p, err)
	}
	var out [][]byte
	for _, s := range saved {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring %s: %w", p, err)
		}
		out = append(out, k)
	}
	for _, k := range keys {
		if !slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, k) }) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (c *Cluster) saveKeys() error {
	p := c.keyringPath()
	if p == "" || c.keyring == nil {
		return nil
	}
	keys := c.keyring.GetKeys() // primary first
	enc := make([]string, len(keys))
	for i, k := range keys {
		enc[i] = EncodeKey(k)
	}
	b, _ := json.Marshal(enc)
	return writeFileAtomic(p, b)
}

// applyKeyOp changes this node's keyring.
func (c *Cluster) applyKeyOp(op string, key []byte) ([]string, error) {
	if c.keyring == nil {
		return nil, errors.New("gossip encryption is off on this node: start it with --gossip-key-file to use keys")
	}
	have := slices.ContainsFunc(c.keyring.GetKeys(), func(k []byte) bool { return bytes.Equal(k, key) })
	var err error
	switch op {
	case KeyList:
	case KeyInstall:
		if have {
			break
		}
		if n := len(c.keyring.GetKeys()); n >= MaxKeys {
			return nil, fmt.Errorf("the keyring already holds %d keys, the most netd allows: remove one first", n)
		}
		err = c.keyring.AddKey(key)
	case KeyUse:
		if !have {
			return nil, errors.New("the key is not installed: run `netd node key install` first")
		}
		err = c.keyring.UseKey(key)
	case KeyRemove:
		if !have {
			break
		}
		if bytes.Equal(c.keyring.GetPrimaryKey(), key) {
			return nil, errors.New("the key is the primary key: make another one primary with `netd node key use` first")
		}
		err = c.keyring.RemoveKey(key)
	default:
		return nil, fmt.Errorf("unknown key operation %q", op)
	}
	if err != nil {
		return nil, err
	}
	if op != KeyList {
		if err := c.saveKeys(); err != nil {
			return nil, fmt.Errorf("save the keyring: %w", err)
		}
	}
	var keys []string
	for _, k := range c.keyring.GetKeys() {
		keys = append(keys, EncodeKey(k))
	}
	return keys, nil
}

func (c *Cluster) answerKeyOp(op keyOp) {
	keys, err := c.applyKeyOp(op.Op, op.Key)
	r := keyReply{ID: op.ID, Node: c.cfg.NodeName}
	if err != nil {
		r.Err = err.Error()
	}
	for _, k := range keys {
		kb, _ := ParseKey(k)
		r.Keys = append(r.Keys, kb)
	}
	if msg, err := encode(msgKeyReply, r); err == nil {
		c.sendTo(peerRef{op.From, op.Addr}, msg)
	}
}

// KeyOp runs a key operation on this node and every live member. `use`
// is refused unless every live member has the key installed, so no node
// is left unable to read the new primary; `install` and `remove` stop at
// this node when it refuses.
func (c *Cluster) KeyOp(ctx context.Context, op string, key []byte) (KeyResult, error) {
	switch op {
	case KeyInstall, KeyUse, KeyRemove:
		if _, err := ParseKey(EncodeKey(key)); err != nil {
			return KeyResult{}, err
		}
	case KeyList:
	default:
		return KeyResult{}, fmt.Errorf("unknown key operation %q: want install, use, remove or list", op)
	}
	if c.keyring == nil {
		return KeyResult{}, errors.New("gossip encryption is off on this node: start every node with --gossip-key-file to rotate keys")
	}
	if op == KeyUse {
		list, err := c.KeyOp(ctx, KeyList, nil)
		if err != nil {
			return list, err
		}
		if n := list.Keys[EncodeKey(key)]; n < list.Members {
			var missing []string
			for _, r := range list.Replies {
				if r.Err != "" || !slices.Contains(r.Keys, EncodeKey(key)) {
					missing = append(missing, r.Node)
				}
			}
			return list, fmt.Errorf("the key is installed on %d of %d live nodes (missing: %v): run `netd node key install` first, so no node is cut off", n, list.Members, missing)
		}
	}
	if op != KeyList {
		// This node first: if it refuses (full keyring, primary key), no
		// other node is changed.
		if _, err := c.applyKeyOp(op, key); err != nil {
			return KeyResult{Op: op}, err
		}
	}
	id := c.keyID.Add(1)<<16 | uint64(time.Now().UnixNano()&0xffff)
	ch := make(chan keyReply, 64)
	c.keyMu.Lock()
	c.keyWait[id] = ch
	c.keyMu.Unlock()
	defer func() {
		c.keyMu.Lock()
		delete(c.keyWait, id)
		c.keyMu.Unlock()
	}()
	msg, err := encode(msgKeyOp, keyOp{ID: id, From: c.cfg.NodeName, Addr: c.Advertise().String(), Op: op, Key: key})
	if err != nil {
		return KeyResult{}, err
	}
	res := KeyResult{Op: op, Keys: map[string]int{}, Primary: map[string]int{}}
	mine, _ := c.applyKeyOp(KeyList, nil)
	res.Replies = append(res.Replies, KeyReply{Node: c.cfg.NodeName, Keys: mine})
	waiting := map[string]bool{}
	for _, m := range c.ml.Members() {
		if m.Name == c.cfg.NodeName {
			continue
		}
		if err := c.ml.SendReliable(m, msg); err != nil {
			res.Replies = append(res.Replies, KeyReply{Node: m.Name, Err: "not reached: " + err.Error()})
			continue
		}
		waiting[m.Name] = true
	}
	res.Members = 1 + len(waiting) + len(res.Replies) - 1
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for len(waiting) > 0 {
		select {
		case r := <-ch:
			if !waiting[r.Node] {
				continue
			}
			delete(waiting, r.Node)
			rep := KeyReply{Node: r.Node, Err: r.Err}
			for _, k := range r.Keys {
				rep.Keys = append(rep.Keys, EncodeKey(k))
			}
			res.Replies = append(res.Replies, rep)
		case <-deadline.C:
			for n := range waiting {
				res.Replies = append(res.Replies, KeyReply{Node: n, Err: "no answer within 5s"})
			}
			waiting = nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	sort.Slice(res.Replies, func(i, j int) bool { return res.Replies[i].Node < res.Replies[j].Node })
	for _, r := range res.Replies {
		for i, k := range r.Keys {
			res.Keys[k]++
			if i == 0 {
				res.Primary[k]++
			}
		}
	}
	return res, nil
}
