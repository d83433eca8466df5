// Package gossip is netd's control plane across hosts: membership through
// hashicorp/memberlist, and replicated tables (networks, endpoints,
// address blocks) spread by its gossip and repaired by its push-pull.
// It holds no driver code; the daemon publishes into it and drivers
// subscribe to its events.
package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is memberlist's and Docker's gossip port.
const DefaultPort = 7946

// MaxKeys is how many gossip keys a keyring holds at most during a
// rotation: the old one, the new one, and one spare.
const MaxKeys = 3

// MaxValueSize bounds an entry's value so that one entry always fits a
// gossip datagram with room for framing and encryption.
const MaxValueSize = 1024

// Config configures a Cluster. Zero durations take the defaults.
type Config struct {
	NodeName string
	// AdvertiseAddr is the address others reach this node at. Empty: the
	// source address of the route to the first Join peer.
	AdvertiseAddr string
	// BindAddr is the address listened on; empty: AdvertiseAddr.
	BindAddr string
	Port     int // 0: DefaultPort
	// Join lists peers (host or host:port) to join at start.
	Join []string
	// Keys is the initial keyring, primary first (from --gossip-key-file);
	// a keyring saved in StateDir by a rotation takes precedence.
	Keys [][]byte
	// StateDir keeps the Lamport clock and the keyring; "" keeps nothing
	// (tests and the simulation).
	StateDir string
	// Meta is published with the node (at most 512 bytes).
	Meta   []byte
	Logger *slog.Logger

	TombstoneTTL      time.Duration // default 35 min (at least 30, so a late copy cannot resurrect)
	OwnerTTL          time.Duration // rows of a node gone this long are dropped; default 24 h
	ReconnectInterval time.Duration // retry dead members and Join peers; default 1 s
	GCInterval        time.Duration // default 1 min
	// QueueLimit bounds each broadcast queue; default 4096 messages. What
	// is dropped is repaired by push-pull.
	QueueLimit int

	// Tune adjusts the memberlist configuration after netd's defaults
	// (tests and the simulation: intervals, transport).
	Tune func(*memberlist.Config)
}

func (c *Config) setDefaults() {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = 35 * time.Minute
	}
	if c.OwnerTTL == 0 {
		c.OwnerTTL = 24 * time.Hour
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = time.Second
	}
	if c.GCInterval == 0 {
		c.GCInterval = time.Minute
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ReadKeyFile reads a gossip key: base64 of 16, 24 or 32 bytes (AES-128,
// -192 or -256), as `openssl rand -base64 32` makes.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key file: %w", err)
	}
	k, err := ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return k, nil
}

// ParseKey decodes a base64 gossip key and checks its length.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("the key is not base64: make one with `openssl rand -base64 32`")
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("the key is %d bytes, want 16, 24 or 32 (AES-128, -192, -256): make one with `openssl rand -base64 32`", len(k))
}

// EncodeKey is the base64 form of a key, as key files and `node key` use.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// joinAddr adds the default port to a peer without one.
func joinAddr(peer string, port int) string {
	if _, _, err := net.SplitHostPort(peer); err == nil {
		return peer
	}
	return net.JoinHostPort(strings.Trim(peer, "[]"), strconv.Itoa(port))
}

// AdvertiseFor picks the address to advertise: the given one, or the
// source address the kernel would use towards the first join peer. It
// never returns an unspecified, loopback-only-by-accident or link-local
// address without being told to.
func AdvertiseFor(advertise string, join []string, port int) (netip.Addr, error) {
	if advertise != "" {
		a, err := netip.ParseAddr(advertise)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("invalid --advertise-addr %q: want an IP address", advertise)
		}
		if a.IsUnspecified() {
			return netip.Addr{}, fmt.Errorf("invalid --advertise-addr %s: others cannot reach an unspecified address; give this node's address on the underlay", a)
		}
		return a.Unmap(), nil
	}
	if len(join) == 0 {
		return netip.Addr{}, errors.New("no --advertise-addr and no --join peer to derive it from: give --advertise-addr with this node's address on the underlay")
	}
	peer := joinAddr(join[0], port)
	// A UDP "connection" sends nothing: it asks the kernel for the route.
	conn, err := net.Dial("udp", peer)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find the address towards --join peer %s: %w; give --advertise-addr", peer, err)
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil || ap.Addr().IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("find the address towards --join peer %s: no route source address; give --advertise-addr", peer)
	}
	return ap.Addr().Unmap(), nil
}
