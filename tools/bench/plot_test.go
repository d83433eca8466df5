package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// svgElements parses the SVG fully (failing on malformed XML) and returns the start elements.
func svgElements(t *testing.T, b []byte) []xml.StartElement {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var els []xml.StartElement
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not valid XML: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			els = append(els, se.Copy())
		}
	}
	return els
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestRenderSVG(t *testing.T) {
	var samples []Sample
	for _, setup := range allSetups {
		for i, m := range metrics {
			for r := 1; r <= 3; r++ {
				samples = append(samples, Sample{Round: r, Setup: setup, Metric: m.Key, Value: float64(10*(i+1) + r)})
			}
		}
	}
	stats := summarize(samples, allSetups)
	b := renderSVG(stats, allSetups, `title with <&> "quotes"`)
	els := svgElements(t, b)
	if len(els) == 0 || els[0].Name.Local != "svg" {
		t.Fatal("root element is not <svg>")
	}
	bars := map[string]int{}
	panels := 0
	whiskers, vsDocker, vsOvl := 0, 0, 0
	for _, e := range els {
		switch {
		case e.Name.Local == "rect" && attr(e, "class") == "bar":
			bars[attr(e, "data-setup")+"/"+attr(e, "data-metric")]++
			if h := attr(e, "height"); strings.HasPrefix(h, "-") {
				t.Errorf("negative bar height %s", h)
			}
		case e.Name.Local == "g" && attr(e, "class") == "panel":
			panels++
		case e.Name.Local == "path" && attr(e, "class") == "whisker":
			whiskers++
		case e.Name.Local == "text" && attr(e, "class") == "vs-docker":
			vsDocker++
		case e.Name.Local == "text" && attr(e, "class") == "vs-ovl-kernel":
			vsOvl++
		}
	}
	if panels != len(metrics) {
		t.Errorf("%d panels, want %d", panels, len(metrics))
	}
	if len(bars) != len(allSetups)*len(metrics) || whiskers != len(allSetups)*len(metrics) {
		t.Errorf("%d distinct bars and %d whiskers, want %d each", len(bars), whiskers, len(allSetups)*len(metrics))
	}
	// Every bridge setup but docker itself carries its ratio to docker under
	// its bar, every overlay setup but ovl-kernel its ratio to ovl-kernel.
	overlay := 0
	for _, s := range allSetups {
		if isOverlaySetup(s) {
			overlay++
		}
	}
	if want := (len(allSetups) - overlay - 1) * len(metrics); vsDocker != want {
		t.Errorf("%d ratios to docker, want %d", vsDocker, want)
	}
	if want := (overlay - 1) * len(metrics); vsOvl != want {
		t.Errorf("%d ratios to ovl-kernel, want %d", vsOvl, want)
	}
	for k, n := range bars {
		if n != 1 {
			t.Errorf("bar %s drawn %d times", k, n)
		}
	}
}

func TestRenderSVGPartial(t *testing.T) {
	// Only one setup and one metric measured: one panel, one bar, still valid XML.
	stats := summarize([]Sample{{Setup: setupVeth, Metric: metricPPS, Value: 0.2}}, allSetups)
	els := svgElements(t, renderSVG(stats, allSetups, "t"))
	var bars, panels int
	for _, e := range els {
		if e.Name.Local == "rect" && attr(e, "class") == "bar" {
			bars++
		}
		if e.Name.Local == "g" && attr(e, "class") == "panel" {
			panels++
		}
	}
	if bars != 1 || panels != 1 {
		t.Errorf("got %d bars, %d panels; want 1, 1", bars, panels)
	}
	// Nothing measured at all still yields a valid document.
	svgElements(t, renderSVG(nil, allSetups, "empty"))
}

func TestNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0.17: 0.2, 19: 20, 21: 25, 42: 50, 3000: 5000, 0: 1} {
		if got := niceMax(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceMax(%v) = %v, want %v", in, got, want)
		}
	}
}
