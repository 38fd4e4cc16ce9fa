package simulate

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// The HTML report of `cpafeed simulate --out`: one self-contained page
// (inline CSS and SVG, no script, no external reference of any kind) that
// opens in a browser without network access. It is also well-formed XML
// (every element closed, attributes quoted), which the tests check.

// strategyColors are the line colors of the strategies, in Strategies()
// order; campaignColors those of the campaigns.
var (
	strategyColors = map[string]string{
		StrategyFlat: "#8c8c8c", StrategyVTR: "#d62728", StrategyCPARaw: "#ff7f0e",
		StrategyCPAfeed: "#1f77b4", StrategyOracle: "#2ca02c",
	}
	campaignColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"}
)

// strategyDoc says what each strategy bids (the page's legend).
var strategyDoc = map[string]string{
	StrategyFlat:    "a constant CPM: the value of an average impression, 1000 × target CPA × base CVR",
	StrategyVTR:     "that CPM × the segment's completion rate measured by cpafeed (VAST completes ÷ starts, shrunk to its parent) ÷ the campaign's average completion rate",
	StrategyCPARaw:  "1000 × target CPA × c/n of the exact segment (decayed conversions ÷ exposures; the campaign's base CVR where the segment was never seen): no hierarchy, no delay correction",
	StrategyCPAfeed: "the scoring core of package bidder on cpafeed's estimate: 1000 × CVR × target CPA (hierarchical empirical Bayes, delay-corrected)",
	StrategyOracle:  "1000 × target CPA × the true CVR of the impression",
}

// WriteHTML writes the report page.
func (r *Result) WriteHTML(w io.Writer) error {
	var b bytes.Buffer
	esc := html.EscapeString
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<title>cpafeed simulate: ` + esc(r.Scenario) + `</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.l { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #555; max-width: 36em; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.note { color: #555; font-size: 0.92em; max-width: 60em; }
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>cpafeed simulate — scenario %s, seed %d, %d days</h1>\n", esc(r.Scenario), r.Seed, r.Days)
	fmt.Fprintf(&b, "<p class=\"note\">Every strategy bid on the same bid requests in a %s-price auction, each through its own in-process cpafeed (exposures with the privacy gates, VAST events, the advertiser's conversion batches with their pixel copies and retries, deduplication, attribution, the model refreshed every %s and refitted every %s of simulated time). CPA is spend ÷ true conversions: the conversions the impressions bought eventually caused, known from the market's truth.</p>\n",
		esc(r.Auction), esc(r.Settings.RefreshEvery), esc(r.Settings.RefitEvery))

	fmt.Fprintf(&b, "<p><b>cpafeed against VTR bidding and the oracle</b>, at equal spend (true conversions per dollar): %s.", esc(r.Headline.text()))
	for _, c := range r.Campaigns {
		fmt.Fprintf(&b, " %s: %s.", esc(c.ID), esc(r.ByCampaign[c.ID].text()))
	}
	b.WriteString(" Uplift capture U is (cpafeed − VTR) ÷ (oracle − VTR) in true conversions per dollar: 0 is no better than VTR bidding, 1 the oracle.</p>\n")

	b.WriteString("<h2>Strategies</h2>\n<table><tr><th>strategy</th><th>spend</th><th>impressions</th><th>VTR</th><th>true conv</th><th>attributed</th><th>CPA</th><th>CPA ÷ oracle</th><th>budget used</th></tr>\n")
	for _, name := range r.Order {
		s := r.Strategies[name]
		fmt.Fprintf(&b, "<tr><td><span style=\"color:%s\">■</span> %s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			strategyColors[name], esc(name), fmtMoney(s.Spend), fmtInt(s.Impressions), fmtNum(s.VTR, 3), fmtInt(s.TrueConversions),
			fmtInt(s.AttributedConversions), fmtMoney(s.CPA), fmtNum(s.CPAVsOracle, 2), fmtPct(s.BudgetUsed))
	}
	b.WriteString("</table>\n<table><tr><th>strategy</th><th>campaign</th><th>spend</th><th>true conv</th><th>attributed</th><th>CPA</th><th>target CPA</th><th>CPA ÷ oracle</th><th>budget used</th></tr>\n")
	for _, name := range r.Order {
		s := r.Strategies[name]
		for _, c := range r.Campaigns {
			cr := s.Campaigns[c.ID]
			fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"l\">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				esc(name), esc(c.ID), fmtMoney(cr.Spend), fmtInt(cr.TrueConversions), fmtInt(cr.AttributedConversions),
				fmtMoney(cr.CPA), fmtMoney(cr.TargetCPA), fmtNum(cr.CPAVsOracle, 2), fmtPct(cr.BudgetUsed))
		}
	}
	b.WriteString("</table>\n<table>\n")
	for _, name := range r.Order {
		fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"l\">%s</td></tr>\n", esc(name), esc(strategyDoc[name]))
	}
	fmt.Fprintf(&b, "</table>\n<p class=\"note\">Every strategy's bid is multiplied by its campaign's pacing multiplier (updated %d times a day from the spend of the last step against the rate that spends the remaining budget over the remaining traffic, within [%g, %g]) and capped at %g × the campaign's average value CPM; a bid the remaining budget cannot cover is not placed. The bidder enters the slot with its campaign's highest bid.</p>\n",
		r.Settings.Pacing.Steps, r.Settings.Pacing.Min, r.Settings.Pacing.Max, r.Settings.CapFactor)

	e := r.Estimator
	b.WriteString("<h2>Estimator</h2>\n")
	fmt.Fprintf(&b, "<p>cpafeed's model at the end of the run, on the next day's traffic (every bid request, each campaign, weighted by its slots): RMSE of ln CVR <b>%s</b>, calibration Σ estimate ÷ Σ true <b>%s</b>, correlation of ln estimate and ln true CVR <b>%s</b>. The raw per-segment c/n of the same counts: RMSE %s, calibration %s.",
		fmtNum(e.RMSELogCVR, 3), fmtNum(e.CalibrationRatio, 3), fmtNum(e.LogCVRCorrelation, 3), fmtNum(e.RawRMSELogCVR, 3), fmtNum(e.RawCalibrationRatio, 3))
	if e.WonCalibration > 0 {
		fmt.Fprintf(&b, " On the impressions it bought, at bid time: Σ estimate ÷ Σ true %s, correlation of the logs %s.", fmtNum(e.WonCalibration, 3), fmtNum(e.WonLogCVRCorrelation, 3))
	}
	b.WriteString("</p>\n<div class=\"charts\">\n")
	r.cpaChart(&b)
	r.calibrationChart(&b)
	r.scatterChart(&b)
	b.WriteString("</div>\n</body></html>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// plot is one SVG chart: a frame with axes and ticks mapping data to
// pixels, linear or logarithmic on each axis.
type plot struct {
	w, h                  float64 // pixels
	left, right, top, bot float64 // margins
	x0, x1, y0, y1        float64 // data range (log10 of it on a log axis)
	logX, logY            bool
	xLabel, yLabel, title string
	caption               string
	xMinStep              float64 // smallest step between x ticks (linear axis)
}

func (p *plot) px(x float64) float64 {
	if p.logX {
		x = math.Log10(x)
	}
	return p.left + (x-p.x0)/(p.x1-p.x0)*(p.w-p.left-p.right)
}

func (p *plot) py(y float64) float64 {
	if p.logY {
		y = math.Log10(y)
	}
	return p.h - p.bot - (y-p.y0)/(p.y1-p.y0)*(p.h-p.top-p.bot)
}

// setRange sets the axis ranges from the data bounds, padded.
func (p *plot) setRange(xmin, xmax, ymin, ymax float64) {
	f := func(lo, hi float64, log bool) (float64, float64) {
		if log {
			lo, hi = math.Log10(lo), math.Log10(hi)
			return math.Floor(lo*2) / 2, math.Ceil(hi*2) / 2
		}
		if hi <= lo {
			hi = lo + 1
		}
		pad := (hi - lo) * 0.05
		return math.Max(0, lo-pad), hi + pad
	}
	p.x0, p.x1 = f(xmin, xmax, p.logX)
	p.y0, p.y1 = f(ymin, ymax, p.logY)
	if p.x1 <= p.x0 {
		p.x1 = p.x0 + 1
	}
	if p.y1 <= p.y0 {
		p.y1 = p.y0 + 1
	}
}

func (p *plot) open(b *bytes.Buffer, caption string) {
	fmt.Fprintf(b, "<figure><svg width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" role=\"img\">\n", p.w, p.h, p.w, p.h)
	fmt.Fprintf(b, "<title>%s</title>\n", html.EscapeString(p.title))
	fmt.Fprintf(b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#fafafa\" stroke=\"#bbb\"/>\n",
		p.left, p.top, p.w-p.left-p.right, p.h-p.top-p.bot)
	p.axes(b)
	p.caption = caption
}

func (p *plot) close(b *bytes.Buffer) {
	fmt.Fprintf(b, "</svg><figcaption>%s</figcaption></figure>\n", html.EscapeString(p.caption))
}

// ticks returns tick positions (in axis units: log10 on a log axis) and
// their labels; a log axis (here always a rate) is labelled in percent.
func ticks(lo, hi float64, log bool, minStep float64) ([]float64, []string) {
	var pos []float64
	var lab []string
	if log {
		mults := []float64{1}
		switch {
		case hi-lo <= 1.6:
			mults = []float64{1, 2, 5}
		case hi-lo <= 2.6:
			mults = []float64{1, 3}
		}
		for e := math.Floor(lo); e <= hi+1e-9; e++ {
			for _, m := range mults {
				v := e + math.Log10(m)
				if v >= lo-1e-9 && v <= hi+1e-9 {
					pos = append(pos, v)
					lab = append(lab, strconv.FormatFloat(100*m*math.Pow(10, e), 'g', 3, 64)+"%")
				}
			}
		}
		return pos, lab
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 7 {
			step *= m
			break
		}
	}
	step = max(step, minStep)
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		pos = append(pos, v)
		lab = append(lab, strconv.FormatFloat(v, 'g', 4, 64))
	}
	return pos, lab
}

func (p *plot) axes(b *bytes.Buffer) {
	xs, xl := ticks(p.x0, p.x1, p.logX, p.xMinStep)
	for i, v := range xs {
		x := p.left + (v-p.x0)/(p.x1-p.x0)*(p.w-p.left-p.right)
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#e3e3e3\"/>", x, p.top, x, p.h-p.bot)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", x, p.h-p.bot+14, xl[i])
	}
	ys, yl := ticks(p.y0, p.y1, p.logY, 0)
	for i, v := range ys {
		y := p.h - p.bot - (v-p.y0)/(p.y1-p.y0)*(p.h-p.top-p.bot)
		fmt.Fprintf(b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>", p.left, y, p.w-p.right, y)
		fmt.Fprintf(b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", p.left-4, y+4, yl[i])
	}
	fmt.Fprintf(b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", (p.left+p.w-p.right)/2, p.h-6, html.EscapeString(p.xLabel))
	fmt.Fprintf(b, "<text x=\"14\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 14 %g)\">%s</text>\n",
		(p.top+p.h-p.bot)/2, (p.top+p.h-p.bot)/2, html.EscapeString(p.yLabel))
	fmt.Fprintf(b, "<text x=\"%g\" y=\"14\" font-weight=\"bold\">%s</text>\n", p.left, html.EscapeString(p.title))
}

// legend writes colored labels in a box: at the top left inside the frame,
// or right of it when the plot keeps a right margin for it.
func (p *plot) legend(b *bytes.Buffer, names, colors []string) {
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	w := 22 + 6.2*float64(width)
	x, y := p.left+6, p.top+6
	if p.right >= w+8 {
		x = p.w - p.right + 8
	}
	fmt.Fprintf(b, "<rect x=\"%g\" y=\"%g\" width=\"%.0f\" height=\"%d\" fill=\"#fff\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
		x, y, w, 6+14*len(names))
	for i, n := range names {
		ty := y + 15 + float64(i)*14
		fmt.Fprintf(b, "<rect x=\"%g\" y=\"%g\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
			x+5, ty-9, colors[i], x+19, ty, html.EscapeString(n))
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// cpaChart: CPA of each day's impressions, per strategy.
func (r *Result) cpaChart(b *bytes.Buffer) {
	p := &plot{w: 600, h: 340, left: 56, right: 96, top: 28, bot: 40, xLabel: "day", yLabel: "CPA (USD per true conversion)", title: "CPA by day", xMinStep: 1}
	ymax := 0.0
	for _, name := range r.Order {
		for _, d := range r.Strategies[name].Daily {
			if v := float64(d.CPA); finite(v) {
				ymax = math.Max(ymax, v)
			}
		}
	}
	p.setRange(1, math.Max(float64(r.Days), 2), 0, math.Max(ymax, 1))
	p.y0 = 0
	p.open(b, "Spend of each day ÷ the true conversions its impressions caused (eventually), per strategy; all campaigns together.")
	var names, colors []string
	for _, name := range r.Order {
		var pts []string
		for i, d := range r.Strategies[name].Daily {
			if v := float64(d.CPA); finite(v) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.px(float64(i+1)), p.py(v)))
			}
		}
		c := strategyColors[name]
		if len(pts) > 0 {
			fmt.Fprintf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", c, strings.Join(pts, " "))
		}
		names, colors = append(names, name), append(colors, c)
	}
	p.legend(b, names, colors)
	p.close(b)
}

// calibrationChart: mean true CVR against mean estimate, by decile of the
// estimate, per campaign (log-log), with the diagonal.
func (r *Result) calibrationChart(b *bytes.Buffer) {
	p := &plot{w: 420, h: 380, left: 60, right: 16, top: 28, bot: 40, logX: true, logY: true,
		xLabel: "estimated CVR (decile mean)", yLabel: "true CVR (decile mean)", title: "Calibration by decile of the estimate"}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, ds := range r.decileBins {
		for _, d := range ds {
			for _, v := range []float64{d.Pred, d.True} {
				if v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	p.setSquare(lo, hi)
	p.open(b, "cpafeed's model at the end, on the next day's traffic: each point is a tenth of the traffic, sorted by estimate. On the diagonal, the estimates are calibrated.")
	p.diagonal(b)
	var names, colors []string
	for c, ds := range r.decileBins {
		col := campaignColors[c%len(campaignColors)]
		var pts []string
		for _, d := range ds {
			if d.Pred > 0 && d.True > 0 {
				x, y := p.px(d.Pred), p.py(d.True)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				fmt.Fprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x, y, col)
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1\" points=\"%s\"/>\n", col, strings.Join(pts, " "))
		}
		if c < len(r.Campaigns) {
			names, colors = append(names, r.Campaigns[c].ID), append(colors, col)
		}
	}
	p.legend(b, names, colors)
	p.close(b)
}

// setSquare sets both axes to the CVRs [lo, hi], or 1e-4..1e-2 when no
// point widened them.
func (p *plot) setSquare(lo, hi float64) {
	if !(lo < hi) {
		lo, hi = 1e-4, 1e-2
	}
	p.setRange(lo, hi, lo, hi)
}

func (p *plot) diagonal(b *bytes.Buffer) {
	lo, hi := math.Max(p.x0, p.y0), math.Min(p.x1, p.y1)
	if p.logX {
		lo, hi = math.Pow(10, lo), math.Pow(10, hi)
	}
	fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n",
		p.px(lo), p.py(lo), p.px(hi), p.py(hi))
}

// scatterChart: estimate against truth per leaf segment (log-log).
func (r *Result) scatterChart(b *bytes.Buffer) {
	p := &plot{w: 420, h: 380, left: 60, right: 16, top: 28, bot: 40, logX: true, logY: true,
		xLabel: "true CVR of the segment", yLabel: "cpafeed's estimate", title: "Estimate vs truth per segment"}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, pts := range r.scatterPts {
		for _, e := range pts {
			if e.Pred > 0 && e.True > 0 {
				lo, hi = math.Min(lo, math.Min(e.Pred, e.True)), math.Max(hi, math.Max(e.Pred, e.True))
			}
		}
	}
	p.setSquare(lo, hi)
	p.open(b, "Each point is a leaf segment (campaign/publisher/bundle/genre/metro) of the next day's traffic, the most trafficked per campaign; the estimate is the one a bid would have used (the deepest node the model knows).")
	p.diagonal(b)
	var names, colors []string
	for c, pts := range r.scatterPts {
		col := campaignColors[c%len(campaignColors)]
		for _, e := range pts {
			if e.Pred > 0 && e.True > 0 {
				fmt.Fprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\" fill=\"%s\" fill-opacity=\"0.45\"/>", p.px(e.True), p.py(e.Pred), col)
			}
		}
		b.WriteByte('\n')
		if c < len(r.Campaigns) {
			names, colors = append(names, r.Campaigns[c].ID), append(colors, col)
		}
	}
	p.legend(b, names, colors)
	p.close(b)
}
