// Package e2e holds netd's end-to-end tests. Each test builds its own lab
// (tools/lab): throwaway network namespaces, each running a real `netd
// daemon`, driven only through the `netd` binary, as a user would. The tests
// need root and skip without it; set NETD_BIN to test a prebuilt binary.
//
//	sudo NETD_BIN=$PWD/bin/netd go test -count=1 ./tools/e2e/
package e2e
