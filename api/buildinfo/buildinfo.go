// Package buildinfo holds what `make build` stamps into the binary. The CLI
// (`netd version`, Client) and the daemon (GET /v1/version, Server) both
// read it, so one -X flag sets both. It is a leaf package.
package buildinfo

// Version is the `git describe --always --dirty` of the build, set with
// -ldflags "-X github.com/netd-dev/netd/api/buildinfo.Version=...";
// "dev" for a plain `go build`.
var Version = "dev"
