package lab

import (
	"errors"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
)

// scaleColors are the lines of the scaling plot, by scenario scaled.
var scaleColors = []string{"#e15759", "#4e79a7", "#59a14f", "#f28e2b"}

// WriteScaleSVG plots the gap (seconds) against memcached's size (MiB), a
// line per scenario scaled, each point labelled with its gap.
func WriteScaleSVG(w io.Writer, res *ScaleResult) error {
	ser := res.series()
	if len(ser) == 0 {
		return errors.New("scale svg: no successful run")
	}
	bases := make([]string, 0, len(ser))
	var maxX, maxY float64
	for b, pts := range ser {
		bases = append(bases, b)
		for _, p := range pts {
			maxX, maxY = max(maxX, p[0]), max(maxY, p[1]/1000)
		}
	}
	sort.Strings(bases)
	const width, height, left, right, top, bottom = 900, 520, 80, 40, 60, 90
	stepX, stepY := niceStep(maxX, 8), niceStep(maxY, 6)
	spanX := stepX * float64(int(maxX/stepX)+1)
	spanY := stepY * float64(int(maxY/stepY)+1)
	x := func(v float64) float64 { return left + v/spanX*(width-left-right) }
	y := func(v float64) float64 { return height - bottom - v/spanY*(height-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="16">The host client's gap against the service's size (memcached, %d MiB guest)</text>`+"\n", left, ScaleGuestMB)
	for v := 0.0; v <= spanY+stepY/2; v += stepY {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, width-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s s</text>`+"\n", left-6, y(v)+4, trimFloat(v))
	}
	for v := 0.0; v <= spanX+stepX/2; v += stepX {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`, x(v), x(v), top, height-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(v), height-bottom+18, trimFloat(v))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">MiB of values in memcached</text>`+"\n", (left+width-right)/2, height-bottom+40)
	for i, base := range bases {
		color := scaleColors[i%len(scaleColors)]
		var pts []string
		for _, p := range ser[base] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1]/1000)))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		for _, p := range ser[base] {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`, x(p[0]), y(p[1]/1000), color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%s s</text>`+"\n", x(p[0])+6, y(p[1]/1000)-6, color, trimFloat(p[1]/1000))
		}
		ly := height - 28
		lx := left + i*260
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`, lx, lx+24, ly, ly, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+30, ly+4, html.EscapeString(base))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
