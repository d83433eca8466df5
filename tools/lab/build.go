//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// NetdBinary returns $NETD_BIN if set, else builds ./cmd/netd of the module
// the current directory is in, once per process.
func NetdBinary() (string, error) {
	if p := os.Getenv("NETD_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("resolve NETD_BIN: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("NETD_BIN: %w", err)
		}
		return abs, nil
	}
	buildOnce.Do(func() { builtBin, buildErr = build() })
	return builtBin, buildErr
}

// RemoveBuilt deletes the binary NetdBinary built, if any (call from TestMain).
func RemoveBuilt() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

func build() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "netd-lab-bin-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	buildDir = dir
	bin := filepath.Join(dir, "netd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./cmd/netd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build netd: %w\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot finds the netd module's root directory from the current directory.
func ModuleRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the netd module (set NETD_BIN)")
	}
	return filepath.Dir(mod), nil
}

// goTool prefers the go on PATH and falls back to the machine's /usr/local/go.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
