//go:build linux

package dockerlab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ImageRepo is the repository of the image Image builds; the tag is the first 12 hex
// digits of the busybox binary's SHA-256.
const ImageRepo = "dockerlab/busybox"

// Image returns the engine's local image, importing it on first use: a root file system
// with a static busybox and its applets (sh, sleep, ping, ip, ...) as symlinks, made with
// `docker import` because no registry is reachable. Its default command is /bin/sh.
func (e *Engine) Image(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.image != "" {
		return e.image, nil
	}
	bin, err := os.ReadFile(e.busybox)
	if err != nil {
		return "", fmt.Errorf("read busybox for the image: %w (install busybox-static)", err)
	}
	if err := checkStatic(e.busybox); err != nil {
		return "", err
	}
	applets, err := busyboxApplets(ctx, e.busybox)
	if err != nil {
		return "", err
	}
	tarball, err := rootfsTar(bin, applets)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	ref := ImageRepo + ":" + hex.EncodeToString(sum[:])[:12]
	if _, err := e.dockerIn(ctx, bytes.NewReader(tarball), "import", "--change", `CMD ["/bin/sh"]`, "-", ref); err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	e.image = ref
	return ref, nil
}

// checkStatic fails for a dynamically linked binary: the image has no libc to load.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w (want a static busybox: install busybox-static)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: install busybox-static (apt-get install busybox-static), the image holds no libc", path)
		}
	}
	return nil
}

// busyboxApplets asks busybox for the applets it was built with.
func busyboxApplets(ctx context.Context, path string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", path, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", path)
	}
	return applets, nil
}

// rootfsTar builds the image's file system: /bin/busybox, a symlink per applet, and
// the directories a container expects.
func rootfsTar(busybox []byte, applets []string) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Unix(0, 0)
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "root/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(busybox))},
	}
	for _, h := range hdrs {
		h.ModTime = mtime
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("build image tarball: %w", err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(busybox); err != nil {
				return nil, fmt.Errorf("build image tarball: %w", err)
			}
		}
	}
	for _, a := range applets {
		h := &tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("build image tarball: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("build image tarball: %w", err)
	}
	return b.Bytes(), nil
}
