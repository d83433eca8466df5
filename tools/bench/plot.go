package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
)

// Chart geometry: panels in a grid, each with its own y scale.
const (
	panelW    = 400
	panelH    = 260
	panelCols = 2
	padLeft   = 56
	padRight  = 16
	padTop    = 36
	padBottom = 44
)

// setupColors keeps a setup's colour the same in every panel.
var setupColors = map[string]string{
	setupEBPF:   "#2e7d32",
	setupKernel: "#1565c0",
	setupVeth:   "#9e9e9e",
	setupDocker: "#ef6c00",
	// Overlay setups: the bridge setups' hues, lighter.
	setupOvlEBPF:   "#81c784",
	setupOvlKernel: "#64b5f6",
	setupUnderlay:  "#e0e0e0",
}

func colorOf(setup string) string {
	if c, ok := setupColors[setup]; ok {
		return c
	}
	return "#6d4c41"
}

// esc returns s escaped for XML text and attribute values.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// niceMax rounds v up to 1, 2, 2.5 or 5 times a power of ten so axis ticks are round.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// renderSVG draws one panel per metric with a bar per setup (its median) and a min–max whisker.
func renderSVG(stats []Stat, setups []string, title string) []byte {
	var panels []Metric
	for _, m := range metrics {
		for _, s := range stats {
			if s.Metric == m.Key {
				panels = append(panels, m)
				break
			}
		}
	}
	rows := (len(panels) + panelCols - 1) / panelCols
	if rows == 0 {
		rows = 1
	}
	width := panelW * panelCols
	height := panelH*rows + 40
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" text-anchor="middle">%s</text>`+"\n", width/2, esc(title))
	for i, m := range panels {
		ox := float64((i % panelCols) * panelW)
		oy := float64(40 + (i/panelCols)*panelH)
		drawPanel(&b, ox, oy, m, stats, setups)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func drawPanel(b *bytes.Buffer, ox, oy float64, m Metric, stats []Stat, setups []string) {
	var row []Stat
	top := 0.0
	for _, setup := range setups {
		for _, s := range stats {
			if s.Setup == setup && s.Metric == m.Key {
				row = append(row, s)
				top = math.Max(top, s.Max)
			}
		}
	}
	yMax := niceMax(top * 1.12) // head room for the median label above the whisker
	plotX, plotY := ox+padLeft, oy+padTop
	plotW, plotH := float64(panelW-padLeft-padRight), float64(panelH-padTop-padBottom)
	y := func(v float64) float64 { return plotY + plotH - v/yMax*plotH }

	better := "higher is better"
	if !m.HigherBetter {
		better = "lower is better"
	}
	fmt.Fprintf(b, `<g class="panel" data-metric="%s">`+"\n", esc(m.Key))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" text-anchor="middle">%s (%s, %s)</text>`+"\n",
		ox+panelW/2, oy+18, esc(m.Title), esc(m.Unit), better)
	const ticks = 5
	for t := 0; t <= ticks; t++ {
		v := yMax * float64(t) / ticks
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", plotX, y(v), plotX+plotW, y(v))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", plotX-4, y(v)+4, esc(formatValue(v)))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000"/>`+"\n", plotX, plotY, plotX, plotY+plotH)
	if len(row) == 0 {
		b.WriteString("</g>\n")
		return
	}
	slot := plotW / float64(len(row))
	barW := slot * 0.55
	for i, s := range row {
		cx := plotX + slot*(float64(i)+0.5)
		fmt.Fprintf(b, `<rect class="bar" data-setup="%s" data-metric="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: median %s, min %s, max %s (n=%d)</title></rect>`+"\n",
			esc(s.Setup), esc(m.Key), cx-barW/2, y(s.Median), barW, plotY+plotH-y(s.Median), colorOf(s.Setup),
			esc(s.Setup), esc(m.Title), formatValue(s.Median), formatValue(s.Min), formatValue(s.Max), s.N)
		// Whisker from min to max with caps.
		fmt.Fprintf(b, `<path class="whisker" d="M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f" stroke="#000000" fill="none"/>`+"\n",
			cx, y(s.Min), y(s.Max), cx-6, y(s.Min), cx+6, cx-6, y(s.Max), cx+6)
		// Median printed above the whisker so it never leaves the panel.
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", cx, y(s.Max)-5, esc(formatValue(s.Median)))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", cx, plotY+plotH+16, esc(s.Setup))
		if s.VsDocker != nil {
			fmt.Fprintf(b, `<text class="vs-docker" x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#555555">%s docker</text>`+"\n",
				cx, plotY+plotH+30, esc(formatRatio(s.VsDocker)))
		} else if s.VsOvlKernel != nil {
			fmt.Fprintf(b, `<text class="vs-ovl-kernel" x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#555555">%s ovl-kernel</text>`+"\n",
				cx, plotY+plotH+30, esc(formatRatio(s.VsOvlKernel)))
		}
	}
	b.WriteString("</g>\n")
}

// writeSVG writes the chart file.
func writeSVG(path string, stats []Stat, setups []string, title string) error {
	if err := os.WriteFile(path, renderSVG(stats, setups, title), 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}
