//go:build linux

package main

// Reasons shared by several steps.
const (
	whyEnableIPv4 = "dockerd 20.10 predates EnableIPv4 (API 1.47); current Docker shows it, true on an IPv4 network, as netd does"
	whyFilterCase = "dockerd 20.10 writes \"Invalid filter\"; current Docker writes \"invalid filter\", as netd"
	whyPredefined = "current Docker's text ends with a space (\"...predefined bridge network \"), 20.10's does not; netd follows current Docker"
	whyBadSubnet  = "netd's CLI refuses an unparsable --subnet before sending (as it does a bad --gateway or --ip-range); " +
		"Docker's daemon answers (20.10: \"Invalid subnet X : ...\", 28: \"invalid subnet X: invalid CIDR block notation\")"
	whyExitStatus = "docker CLI 28.0-28.2 prints a stray \"exit status 1\" after a failed rm (a CLI bug; 20.10 does not)"
)

// deliberate lists the steps whose outputs differ on purpose, with why;
// README.md's list of deliberate differences is this one.
var deliberate = map[string]string{
	"network ls --format json":       whyEnableIPv4,
	"network ls --format {{json .}}": whyEnableIPv4,
	"network ls --format {{.ID}} {{.IPv4}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.CreatedAt}}": whyEnableIPv4,
	"network inspect c1":            whyEnableIPv4,
	"network inspect c1 c2":         whyEnableIPv4,
	"network inspect c2":            whyEnableIPv4,
	"network inspect c3":            whyEnableIPv4,
	"network inspect -f json c1":    whyEnableIPv4,
	"network inspect -f json c1 c2": whyEnableIPv4,
	"network inspect c1 nosuch":     whyEnableIPv4,
	"network inspect host":          whyEnableIPv4,
	"network inspect none":          whyEnableIPv4,
	"network inspect bridge": whyEnableIPv4 + "; netd's default bridge is netd0 and has netd.dataplane; " +
		"dockerd shows the default bridge's Gateway only from its second start on (once docker0 holds the address), netd always",
	"network ls --format {{.Name}} {{.Nope}}":      "a template error names the CLI's own Go type (*network.networkContext, main.networkRow)",
	"network ls --filter color=red":                whyFilterCase,
	"network prune -f --filter bogus=1":            whyFilterCase,
	"network create --subnet 10.90.0.0/16 overlap": "current Docker prefixes \"invalid pool request: \" (libnetwork's default IPAM), as netd; 20.10 did not",
	"network create --subnet bogus x1":             whyBadSubnet,
	"network create --subnet 10.92.0.0/33 x1":      whyBadSubnet,
	"network create --subnet 10.93.0.0/24 --gateway bogus x1": "Docker reports an unparsable gateway as \"no matching subnet for gateway bogus\"; " +
		"netd says it is no IP address",
	"network create --subnet 10.93.0.0/24 --aux-address printer x1": "Docker takes \"printer\" for a host with an empty address " +
		"(\"no matching subnet for aux-address \"); netd refuses the value as a flag error (125) asking for host=ip",
	"network create --ipv6 x1": "netd has no IPv6 networks yet: it refuses --ipv6 rather than create what it cannot serve",
	"network create bridge":    whyPredefined,
	"network create host":      whyPredefined,
	"network create none":      whyPredefined,
	"network create default":   whyPredefined,
	"network ls --filter dangling=false": "Docker filters ls on networks listed without their containers, so every custom network " +
		"counts as dangling (28 too: daemon/network/filter.go); netd counts the containers attached",
	"network connect --ip bogus c2 web": "netd's CLI refuses a malformed --ip before sending; Docker's daemon answers with another rule first",
	"network rm c1":                     whyExitStatus,
	"network rm nosuch":                 whyExitStatus,
	"network rm bridge":                 whyExitStatus,
	"network rm host":                   whyExitStatus,
	"network rm c3 nosuch":              whyExitStatus,
}

// whyOldCLI is why steps differ with a docker CLI before 23.0 (Debian's
// 20.10): its usage and error texts, inspect's json format and its
// not-found messages are worded as Docker did then, rm has no --force.
const whyOldCLI = "docker CLI 20.10 words or does this as Docker did then; netd follows the current docker CLI (28)"

// oldCLI are the steps that differ with a docker CLI before 23.0.
var oldCLI = map[string]bool{
	"network ls --filter driver": true, "network ls extra": true, "network ls --bogus": true,
	"network ls --format json": true,
	"network create":           true, "network create a b": true, "network create --label =x x1": true,
	"network create --internal=maybe x1": true, "network create --bogus x1": true,
	"network inspect -f json c1": true, "network inspect -f json c1 c2": true, "network inspect -f json nosuch": true,
	"network inspect -f {{.Name}} nosuch": true, "network inspect nosuch": true, "network inspect c1 nosuch": true,
	"network inspect": true, "network connect c2": true, "network disconnect c3": true,
	"network rm": true, "network rm nosuch": true, "network rm -f nosuch": true, "network rm c3 nosuch": true,
	"network prune extra": true, "network bogus": true,
}

// deliberateReason is why step differs on purpose ("" if it must not);
// cliMajor is the docker CLI's major version.
func deliberateReason(step string, cliMajor int) string {
	if cliMajor < 23 && oldCLI[step] {
		return whyOldCLI
	}
	r := deliberate[step]
	if r == whyExitStatus && cliMajor != 28 {
		return ""
	}
	return r
}
