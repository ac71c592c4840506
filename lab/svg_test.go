package lab

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestWriteTimelineSVG(t *testing.T) {
	full := &Timeline{Scenario: "seamless-update", GapMS: 24000}
	for i, n := range PointNames {
		full.Points = append(full.Points, Point{Name: n, MS: ms(int64(i) * 2000), Source: "host", Detail: "a <detail> & more"})
	}
	partial := &Timeline{Scenario: "kexec-plain", GapMS: 30000, Points: ordered(map[string]Point{
		PointStop:  {Name: PointStop, MS: ms(0)},
		PointFresh: {Name: PointFresh, MS: ms(30000)},
	})}
	for _, c := range []struct {
		name     string
		tls      []*Timeline
		contains []string
		lanes    int
	}{
		{"one", []*Timeline{full}, []string{"seamless-update", "gap 24 s", "initramfs unpacked 8 s"}, 1},
		{"side by side", []*Timeline{full, partial}, []string{"seamless-update / kexec-plain", "missing: shutdown done, kexec", "gap 30 s"}, 2},
		{"nothing known", []*Timeline{{Scenario: "empty", Points: ordered(nil)}}, []string{"missing: freeze/stop"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTimelineSVG(&buf, c.tls); err != nil {
				t.Fatal(err)
			}
			// well-formed XML, with an svg root
			d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
			root := ""
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed: %v\n%s", err, buf.String())
				}
				if se, ok := tok.(xml.StartElement); ok && root == "" {
					root = se.Name.Local
				}
			}
			if root != "svg" {
				t.Errorf("root element %q", root)
			}
			s := buf.String()
			for _, want := range c.contains {
				if !strings.Contains(s, want) {
					t.Errorf("no %q in\n%s", want, s)
				}
			}
			if n := strings.Count(s, `font-weight="bold">`) - 1; n != c.lanes { // minus the title
				t.Errorf("%d lanes, want %d", n, c.lanes)
			}
		})
	}
	if err := WriteTimelineSVG(io.Discard, nil); err == nil {
		t.Error("no timeline: no error")
	}
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct {
		span float64
		n    int
		want float64
	}{
		{60, 12, 5},
		{100, 10, 10},
		{12, 12, 1},
		{3, 12, 0.5},
		{0, 12, 1},
		{130, 12, 20},
	} {
		if got := niceStep(c.span, c.n); got != c.want {
			t.Errorf("niceStep(%v, %d) = %v, want %v", c.span, c.n, got, c.want)
		}
	}
}
