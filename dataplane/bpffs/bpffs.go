//go:build linux

// Package bpffs finds, mounts and checks the BPF filesystem that netd pins
// its maps, programs and links on.
package bpffs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is where the kernel's BPF filesystem is conventionally mounted.
const Root = "/sys/fs/bpf"

// IsBPFFS reports whether dir lies on a BPF filesystem.
func IsBPFFS(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}

// Ensure mounts bpffs at Root when dir is below it and nothing is mounted
// there yet, then creates dir.
func Ensure(dir string) error {
	if strings.HasPrefix(filepath.Clean(dir)+"/", Root+"/") {
		if ok, _ := IsBPFFS(Root); !ok {
			if err := os.MkdirAll(Root, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", Root, err)
			}
			if err := unix.Mount("bpf", Root, "bpf", 0, ""); err != nil {
				return fmt.Errorf("mount bpffs at %s: %w", Root, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir %s: %w", dir, err)
	}
	return nil
}
