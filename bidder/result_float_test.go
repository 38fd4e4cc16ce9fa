package bidder

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestAppendFloat(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", 1: "1", -1: "-1", 0.5: "0.5", 12.3456789: "12.3457", 0.00123456789: "0.00123457",
		0.0999999999: "0.1", 999999.7: "1000000", 123456789: "123457000", 999999999.9: "1000000000",
		40: "40", 0.035: "0.035", 1e-7: "1e-07", 2.5e12: "2.5e+12", 1.0000001: "1",
		35.48175: "35.4817", 870212.5: "870212", 870213.5: "870214", 0.1234565: "0.123456", 99.99995: "99.9999",
		math.NaN(): "0", math.Inf(1): "0",
	} {
		if got := string(appendFloat(nil, f)); got != want {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

// TestAppendFloatSixDigits: across magnitudes, the output is valid JSON and
// within half a unit of the sixth significant digit.
func TestAppendFloatSixDigits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var fs []float64
	for range 200_000 {
		fs = append(fs, math.Pow(10, r.Float64()*18-8)) // 1e-8 .. 1e10
	}
	// Around every power of ten, where the decimal exponent and the
	// rounding carry change.
	for e := -7; e <= 10; e++ {
		p := math.Pow(10, float64(e))
		fs = append(fs, p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)), p*0.9999995, p*0.99999949, p*0.9999996, p*1.0000005)
	}
	// Near ties of the sixth digit, where the scaling's rounding error
	// could tip them: d.ddddd5 × 10^e and its neighbours.
	for range 100_000 {
		e := r.IntN(15) - 6
		d := float64(100000+r.IntN(900000)) + 0.5
		f := d * math.Pow(10, float64(e-5))
		fs = append(fs, f, math.Nextafter(f, 0), math.Nextafter(f, math.Inf(1)))
	}
	for _, f := range fs {
		out := appendFloat(nil, f)
		var back float64
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%v: %s is not JSON: %v", f, out, err)
		}
		// The same six digits as %g (strconv's exact rounding), in
		// another layout.
		if ref, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 6, 64), 64); back != ref {
			t.Fatalf("%v: %s, strconv %v", f, out, ref)
		}
	}
}
