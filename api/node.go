package api

import "time"

// Node is a cluster member as one node sees it (GET /v1/nodes).
type Node struct {
	Name         string    `json:"Name"`
	Addr         string    `json:"Addr"`
	Port         int       `json:"Port"`
	State        string    `json:"State"` // alive, suspect, dead, left
	Self         bool      `json:"Self"`
	Version      string    `json:"Version,omitempty"`
	StateChanged time.Time `json:"StateChanged,omitzero"`
	Endpoints    int       `json:"Endpoints"` // live endpoint entries this node holds of the member
	Networks     int       `json:"Networks"`  // cluster-wide networks the member created
	// EndpointList and Gossip are filled by inspect only.
	EndpointList []NodeEndpoint `json:"EndpointList,omitempty"`
	Gossip       *GossipStats   `json:"Gossip,omitempty"`
}

// NodeEndpoint is one endpoint entry of a member.
type NodeEndpoint struct {
	ID        string `json:"ID"`
	Network   string `json:"Network"`
	NetworkID string `json:"NetworkID"`
	Scope     string `json:"Scope"`
	Container string `json:"Container"`
	IPv4      string `json:"IPv4Address,omitempty"`
	MAC       string `json:"MacAddress"`
	VTEP      string `json:"VTEP"`
	State     string `json:"State"` // live, or withdrawn while the member is not alive
}

// GossipStats are the counters of this node's gossip.
type GossipStats struct {
	DecryptErrors   uint64 `json:"DecryptErrors"`
	DroppedMessages uint64 `json:"DroppedMessages"`
	QueueDropped    uint64 `json:"QueueDropped"`
	Pulls           uint64 `json:"Pulls"`
}

// NodeKeyRequest is the body of POST /v1/nodes/keys/{install,use,remove}.
type NodeKeyRequest struct {
	Key string `json:"Key"` // base64
}

// NodeKeyReply is one member's answer to a key operation.
type NodeKeyReply struct {
	Node  string   `json:"Node"`
	Error string   `json:"Error,omitempty"`
	Keys  []string `json:"Keys,omitempty"` // primary first
}

// NodeKeyResponse answers a key operation: every live member's reply and,
// per key, how many members hold it and use it as primary.
type NodeKeyResponse struct {
	Op      string         `json:"Op"`
	Members int            `json:"Members"`
	Nodes   []NodeKeyReply `json:"Nodes"`
	Keys    map[string]int `json:"Keys"`
	Primary map[string]int `json:"Primary"`
}
