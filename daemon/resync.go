package daemon

import (
	"sync"
	"time"
)

// resyncLoop runs a service's pass level-triggered: after a kick (kicks
// coalesce while a pass runs) and every interval, one pass at a time.
type resyncLoop struct {
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newResyncLoop() *resyncLoop {
	return &resyncLoop{kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// poke asks for a pass; it never blocks.
func (l *resyncLoop) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run calls pass after every kick, and onTick then pass every interval,
// until halt. Start it with go.
func (l *resyncLoop) run(every time.Duration, onTick, pass func()) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		case <-t.C:
			if onTick != nil {
				onTick()
			}
		}
		pass()
	}
}

// halt stops the loop and waits for a pass under way.
func (l *resyncLoop) halt() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}
