//go:build linux

package daemon

import (
	"encoding/json"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/apitest"
)

// TestVersionIsBuildinfo: GET /v1/version reports the variable `make build`
// stamps, the same one the CLI shows as the Client version.
func TestVersionIsBuildinfo(t *testing.T) {
	apitest.StampVersion(t, "c00855e-dirty")
	data := wantStatus(t, NewHandler(newTestEnv(t).m, nil), "GET", "/v1/version", "", 200, "")
	var v api.VersionInfo
	if err := json.Unmarshal(data, &v); err != nil || v.Version != "c00855e-dirty" {
		t.Errorf("GET /v1/version = %s (%v), want Version c00855e-dirty", data, err)
	}
}
