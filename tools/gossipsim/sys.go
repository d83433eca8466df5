package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMark is a point in time to measure CPU use from.
type cpuMark struct {
	wall         time.Time
	proc         time.Duration // this process, user + system
	busy, total  uint64        // whole machine, /proc/stat jiffies
	machineKnown bool
}

func markCPU() cpuMark {
	m := cpuMark{wall: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.proc = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	m.busy, m.total, m.machineKnown = machineJiffies()
	return m
}

// machineJiffies reads the first line of /proc/stat: busy is everything
// but idle and iowait.
func machineJiffies() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, true
}

// phase reports the CPU use since m.
func (m cpuMark) phase(name string) Phase {
	now := markCPU()
	wall := now.wall.Sub(m.wall).Seconds()
	p := Phase{Name: name, WallS: wall, Cores: runtime.NumCPU(), Load1: load1()}
	if wall > 0 {
		p.ProcCores = (now.proc - m.proc).Seconds() / wall
	}
	if m.machineKnown && now.machineKnown && now.total > m.total {
		p.MachineCores = float64(now.busy-m.busy) / float64(now.total-m.total) * float64(p.Cores)
	}
	return p
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func maxRSSMB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // kilobytes on Linux
}

// raiseFileLimit lifts the soft open-file limit to the hard one: each
// member holds a UDP and a TCP socket plus its connections.
func raiseFileLimit(need uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if rl.Cur >= need {
		return nil
	}
	if rl.Max < need {
		rl.Max = need // allowed as root
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("raise the open-file limit to %d (needed for the members' sockets): %w; run as root or with `ulimit -n %d`", rl.Cur, err, need)
	}
	return nil
}

func hostInfo() map[string]string {
	h := map[string]string{"go": runtime.Version(), "cpus": strconv.Itoa(runtime.NumCPU()), "gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0))}
	if n, err := os.Hostname(); err == nil {
		h["hostname"] = n
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	h["load1_start"] = strconv.FormatFloat(load1(), 'f', 2, 64)
	return h
}
