package gossip

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Messages are framed as one type byte plus a msgpack body, as serf does.
type msgType uint8

const (
	msgEntry    msgType = iota + 1 // one Entry, gossiped
	msgPull                        // pullRequest: send me these owners' entries
	msgSnapshot                    // snapshot: entries of one owner, answer to msgPull
	msgKeyOp                       // keyOp: change the keyring
	msgKeyReply                    // keyReply: answer to msgKeyOp
	msgDigest                      // digest: push-pull state (LocalState)
	msgLeave                       // leaveIntent: the sender is leaving on purpose
)

// wireEntry is Entry on the wire: an array, not a map, to keep datagrams
// small.
type wireEntry struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	Table   string
	Owner   string
	Key     string
	Version uint64
	Deleted bool
	Value   []byte
}

// ownerDigest summarises what a node holds of one owner's entries.
type ownerDigest struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	Owner   string
	Max     uint64 // highest version seen, tombstones and collected ones included
	Hash    uint64 // xor of hash(table, key, version) over live entries
	Live    uint32
}

// digest is the push-pull state: which versions a node holds, not the
// entries themselves. A peer that is behind pulls what it lacks, so a
// periodic push-pull at 1,000 hosts × 100 endpoints is a few tens of KB,
// not the whole table.
type digest struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	From    string
	Addr    string // host:port: answers go there even before the peer's alive message is merged
	Owners  []ownerDigest
}

type pullItem struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	Owner   string
	Since   uint64
}

type pullRequest struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	From    string
	Addr    string
	Items   []pullItem
}

// snapshot carries entries of one owner. Full means every entry the sender
// holds of that owner: the receiver drops what is not in it (tombstones it
// may have missed were already collected on the sender).
type snapshot struct {
	_struct bool   `codec:",toarray"` //nolint:unused // codec option
	From    string // the sender: only the owner's full snapshot removes rows
	Owner   string
	Full    bool
	Max     uint64
	Floor   uint64
	Entries []wireEntry
}

// leaveIntent tells members that the coming dead message for From is a
// graceful leave: memberlist's leave event does not say which it was.
type leaveIntent struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	From    string
}

type keyOp struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	ID      uint64
	From    string
	Addr    string
	Op      string // install, use, remove, list
	Key     []byte
}

type keyReply struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	ID      uint64
	Node    string
	Err     string
	Keys    [][]byte // primary first
}

var msgpackHandle = &codec.MsgpackHandle{WriteExt: true}

func encode(t msgType, v any) ([]byte, error) {
	var body []byte
	if err := codec.NewEncoderBytes(&body, msgpackHandle).Encode(v); err != nil {
		return nil, fmt.Errorf("encode gossip message %d: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// decode reads the body of a message whose type byte was already taken.
func decode(t msgType, body []byte, v any) error {
	if len(body) == 0 {
		return errors.New("empty gossip message")
	}
	if err := codec.NewDecoderBytes(body, msgpackHandle).Decode(v); err != nil {
		return fmt.Errorf("decode gossip message %d: %w", t, err)
	}
	return nil
}
