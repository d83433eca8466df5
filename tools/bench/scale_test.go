//go:build linux

package main

import (
	"fmt"
	"testing"
)

func TestParseScale(t *testing.T) {
	for in, want := range map[string]string{
		"10,100,1000": "[10 100 1000]",
		" 5 , 7 ":     "[5 7]",
		"none":        "[]",
		"":            "[]",
	} {
		got, err := parseScale(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("parseScale(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"100,10", "10,10", "0", "-1", "x", "1001", "10,,20"} {
		if got, err := parseScale(bad); err == nil {
			t.Errorf("parseScale(%q) = %v, want an error", bad, got)
		}
	}
}
