package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the CLI a thin client: it may import api (and its leaf
// packages, buildinfo among them) and dataplane/sandbox (to enter a
// container's netns); only daemon.go may reach into the daemon. Package api
// stays a stdlib-only leaf.
func TestImports(t *testing.T) {
	const mod = "github.com/netd-dev/netd/"
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("glob: %v %v", files, err)
	}
	sawDaemon := false
	for _, f := range files {
		for _, imp := range imports(t, f) {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			pkg := strings.TrimPrefix(imp, mod)
			switch {
			case pkg == "api", strings.HasPrefix(pkg, "api/"), pkg == "dataplane/sandbox":
			case pkg == "daemon" && f == "daemon.go":
				sawDaemon = true
			default:
				t.Errorf("%s imports %s: cmd/netd may import only api, api/... and dataplane/sandbox (and daemon, from daemon.go)", f, imp)
			}
		}
	}
	if !sawDaemon {
		t.Error("daemon.go no longer imports the daemon package; update this test")
	}

	apiFiles, err := filepath.Glob("../../api/*.go")
	if err != nil || len(apiFiles) == 0 {
		t.Fatalf("glob api: %v %v", apiFiles, err)
	}
	for _, f := range apiFiles {
		if strings.HasSuffix(f, "_test.go") {
			continue // tests may use api's own test helpers (api/apitest)
		}
		for _, imp := range imports(t, f) {
			if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: package api is stdlib only", f, imp)
			}
		}
	}
}

func imports(t *testing.T, file string) []string {
	t.Helper()
	af, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range af.Imports {
		p, err := strconv.Unquote(s.Path.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}
