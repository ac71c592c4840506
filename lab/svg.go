package lab

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// afterRestore are the points drawn from the restore (or start), each in
// its third of the bar: they may come in any order.
var afterRestore = map[string]int{PointWoken: 0, PointHeld: 1, PointFresh: 2}

// Colours of the phases, by the point each phase ends at.
var phaseColors = map[string]string{
	PointShutdown:  "#8c8c8c",
	PointKexec:     "#b07aa1",
	PointKernel:    "#9c755f",
	PointInitramfs: "#e15759",
	PointStage1:    "#f28e2b",
	PointSwitch:    "#edc948",
	PointUnit:      "#59a14f",
	PointAsked:     "#a0cbe8",
	PointRestored:  "#76b7b2",
	PointWoken:     "#ff9da7",
	PointHeld:      "#4e79a7",
	PointFresh:     "#17becf",
}

const (
	svgWidth  = 1100
	svgLeft   = 190 // room for the lane labels
	svgRight  = 30
	svgLaneH  = 150
	svgTop    = 60
	svgLegend = 60
)

// niceStep picks an axis step of 1, 2 or 5 times a power of ten giving
// about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 || n <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// WriteTimelineSVG draws timelines one above the other on a shared axis of
// seconds since each one's origin: the host client's gap as a band, the
// phases as coloured segments between the points, each point labelled, and
// the missing points named.
func WriteTimelineSVG(w io.Writer, tls []*Timeline) error {
	if len(tls) == 0 {
		return errors.New("timeline svg: no timeline")
	}
	lo, hi := int64(0), int64(1000)
	for _, tl := range tls {
		hi = max(hi, tl.GapMS)
		for _, p := range tl.Points {
			if p.MS != nil {
				lo, hi = min(lo, *p.MS), max(hi, *p.MS)
			}
		}
	}
	span := float64(hi-lo) * 1.04
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(ms int64) float64 { return svgLeft + float64(ms-lo)/span*plotW }
	height := svgTop + len(tls)*svgLaneH + svgLegend + 20

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	names := make([]string, len(tls))
	for i, tl := range tls {
		names[i] = tl.Scenario
	}
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">seamless lab timeline: %s</text>`+"\n", esc(strings.Join(names, " / ")))
	fmt.Fprintf(&b, `<text x="10" y="38" fill="#555">seconds since the service stopped answering the host client (host clock; guest points placed by their boot's clock sample)</text>`+"\n")

	// axis
	axisY := svgTop + len(tls)*svgLaneH
	step := niceStep(span/1000, 12) * 1000
	for t := math.Ceil(float64(lo)/step) * step; t <= float64(hi); t += step {
		xx := x(int64(t))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>`+"\n", xx, svgTop, xx, axisY)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s s</text>`+"\n", xx, axisY+14, trimFloat(t/1000))
	}

	for i, tl := range tls {
		y0 := svgTop + i*svgLaneH
		barY := y0 + 22
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", barY+12, esc(tl.Scenario))
		if tl.GapMS > 0 {
			fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">gap %s s</text>`+"\n", barY+28, trimFloat(float64(tl.GapMS)/1000))
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="6" fill="#d62728" opacity="0.7"><title>host client's gap: %d ms</title></rect>`+"\n",
				x(0), barY-9, x(tl.GapMS)-x(0), tl.GapMS)
		}
		// The phases as Timeline.Phases counts them: the peers' waking and
		// the two answers from the restore, each a third of the bar.
		var last, restored *Point
		var missing []string
		level := 0
		for j := range tl.Points {
			p := &tl.Points[j]
			if p.MS == nil {
				missing = append(missing, p.Name)
				continue
			}
			lane, answer := afterRestore[p.Name]
			from, y, h := last, barY, 16
			if answer {
				from, h, y = restored, 5, barY+5*lane
			}
			if from != nil {
				x1, x2 := x(*from.MS), x(*p.MS)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %d ms</title></rect>`+"\n",
					x1, y, math.Max(x2-x1, 0.5), h, phaseColors[p.Name], esc(p.Name), *p.MS-*from.MS)
			}
			xx := x(*p.MS)
			ly := barY + 30 + 13*(level%6)
			level++
			anchor, tx := "start", xx+2
			if xx > svgLeft+0.7*plotW {
				anchor, tx = "end", xx-2
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-width="0.8"/>`+"\n", xx, barY-2, xx, ly-9)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s"><title>%s (%s)</title>%s %s s</text>`+"\n",
				tx, ly, anchor, esc(p.Detail), esc(p.Source), esc(p.Name), trimFloat(float64(*p.MS)/1000))
			if !answer {
				last, restored = p, p
			}
		}
		if len(missing) > 0 {
			fmt.Fprintf(&b, `<text x="10" y="%d" fill="#999">missing: %s</text>`+"\n", y0+svgLaneH-12, esc(strings.Join(missing, ", ")))
		}
	}

	// legend: one swatch per phase, named for the point it ends at
	ly := axisY + 30
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">phase ending at:</text>`+"\n", ly+9)
	lx := float64(svgLeft)
	for i, n := range append([]string{"the host client's gap"}, PointNames[1:]...) {
		w := 13 + 6.5*float64(len(n)) + 14
		if lx+w > svgWidth-svgRight {
			lx, ly = svgLeft, ly+18
		}
		if i == 0 {
			fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="5" fill="#d62728" opacity="0.7"/>`, lx, ly+3)
		} else {
			fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="10" fill="%s"/>`, lx, ly, phaseColors[n])
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s</text>`+"\n", lx+13, ly+9, esc(n))
		lx += w
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string { return html.EscapeString(s) }

// trimFloat prints seconds with up to two decimals, without trailing zeros.
func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}
