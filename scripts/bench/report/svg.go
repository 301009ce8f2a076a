package main

import (
	"fmt"
	"math"
	"strings"
)

// series is one line of a chart.
type series struct {
	name   string
	color  string
	dashed bool
	pts    [][2]float64 // x, y
}

// chart is a small line chart written as SVG by hand: no plotting library
// is worth a dependency for two figures.
type chart struct {
	title, xLabel, yLabel string
	xLog, yLog            bool
	series                []series
}

const (
	width, height = 760, 440
	left, right   = 80, 190
	top, bottom   = 40, 60
)

func (c *chart) svg() string {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, p := range s.pts {
			if (c.xLog && p[0] <= 0) || (c.yLog && p[1] <= 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, p[0]), math.Max(xmax, p[0])
			ymin, ymax = math.Min(ymin, p[1]), math.Max(ymax, p[1])
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax, ymin, ymax = 1, 10, 1, 10
	}
	xt := ticks(xmin, xmax, c.xLog)
	yt := ticks(ymin, ymax, c.yLog)
	if !c.yLog {
		yt = ticks(0, ymax, false)
	}
	xmin, xmax = math.Min(xmin, xt[0]), math.Max(xmax, xt[len(xt)-1])
	ymin, ymax = math.Min(ymin, yt[0]), math.Max(ymax, yt[len(yt)-1])
	tr := func(v, lo, hi float64, log bool) float64 {
		if log {
			v, lo, hi = math.Log10(v), math.Log10(lo), math.Log10(hi)
		}
		if hi == lo {
			return 0.5
		}
		return (v - lo) / (hi - lo)
	}
	px := func(x float64) float64 { return left + tr(x, xmin, xmax, c.xLog)*(width-left-right) }
	py := func(y float64) float64 { return height - bottom - tr(y, ymin, ymax, c.yLog)*(height-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(c.title))
	for _, x := range xt {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px(x), top, px(x), height-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), height-bottom+16, num(x))
	}
	for _, y := range yt {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, py(y), width-right, py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(y)+4, num(y))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", left, top, width-left-right, height-top-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", left+(width-left-right)/2, height-18, esc(c.xLabel))
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+(height-top-bottom)/2, esc(c.yLabel))
	for i, s := range c.series {
		var pts []string
		for _, p := range s.pts {
			if (c.xLog && p[0] <= 0) || (c.yLog && p[1] <= 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
		}
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
		}
		ly := top + 10 + i*20
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", width-right+12, ly, width-right+36, ly, s.color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", width-right+42, ly+4, esc(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// ticks returns round tick values covering lo..hi: powers of ten (with 2
// and 5 between when the range is short) on a log axis, 1/2/5 steps on a
// linear one.
func ticks(lo, hi float64, log bool) []float64 {
	if log {
		var out []float64
		steps := []float64{1}
		if math.Log10(hi/lo) < 3 {
			steps = []float64{1, 2, 5}
		}
		for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
			for _, s := range steps {
				v := s * math.Pow(10, e)
				if v >= lo/10*9.99 && (len(out) == 0 || out[len(out)-1] < hi) {
					out = append(out, v)
				}
			}
		}
		// Trim leading ticks far below the data.
		for len(out) > 2 && out[1] <= lo {
			out = out[1:]
		}
		return out
	}
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Floor(lo/step) * step; v < hi+step; v += step {
		out = append(out, v)
	}
	return out
}

func num(v float64) string {
	switch {
	case v >= 1e6 && math.Mod(v, 1e6) == 0:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3 && math.Mod(v, 1e3) == 0:
		return fmt.Sprintf("%gk", v/1e3)
	case v < 1 && v > 0:
		return fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("%g", math.Round(v*100)/100)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
