package daemon

import (
	"testing"
	"time"
)

func TestResyncLoopPokeAndHalt(t *testing.T) {
	l := newResyncLoop()
	passes := make(chan struct{}, 8)
	ticks := 0
	go l.run(time.Hour, func() { ticks++ }, func() { passes <- struct{}{} })
	for i := range 3 {
		l.poke()
		select {
		case <-passes:
		case <-time.After(10 * time.Second):
			t.Fatalf("poke %d: no pass", i)
		}
	}
	// Pokes while nobody drains the kick coalesce into one pending pass, never block.
	for range 100 {
		l.poke()
	}
	l.halt()
	l.halt() // a second halt returns too
	if ticks != 0 {
		t.Errorf("onTick ran %d times without a tick", ticks)
	}
}
