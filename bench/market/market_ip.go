package market

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Households' public IPs. Each household is on an internet line: its own,
// or one shared by a group of households of its metro (carrier-grade NAT:
// fixed wireless access, some fiber and apartment networks). A line's IP
// changes on a given day with probability ChurnPerDay (a new DHCP lease, a
// router restart, an ISP renumbering), after which its households show the
// new address in bid requests and conversions alike. So a conversion days
// after its exposure may no longer match it by IP (a false negative), and a
// conversion of one household may match another's exposure on a shared IP
// (a false positive).

// shareIPs puts a share of the households of every metro into groups of
// HouseholdsPerSharedIP behind one IP. It draws from its own stream, so that
// without sharing nothing else moves.
func (m *Market) shareIPs(spec IPSpec) {
	if spec.SharedShare <= 0 {
		return
	}
	r := rand.New(rand.NewPCG(m.seed, tagSharedIP))
	open := make([]int32, len(m.metros)) // per metro: its open group's line, -1 none
	fill := make([]int, len(m.metros))
	for i := range open {
		open[i] = -1
	}
	lines := int32(len(m.households))
	ips := map[int32]string{}
	for h := range m.households {
		hh := &m.households[h]
		if r.Float64() >= spec.SharedShare {
			continue
		}
		mt := hh.metro
		if open[mt] < 0 || fill[mt] == spec.HouseholdsPerSharedIP {
			open[mt], fill[mt] = lines, 0
			ips[lines] = ipFromBits(r.Uint64())
			lines++
		}
		hh.line = open[mt]
		hh.ip = ips[hh.line]
		fill[mt]++
	}
}

// ipFromBits makes a public IPv4 address of a US ISP from 64 random bits.
func ipFromBits(u uint64) string {
	return fmt.Sprintf("%d.%d.%d.%d", ispOctets[u%uint64(len(ispOctets))], byte(u>>16), byte(u>>24), byte(1+(u>>32)%253))
}

// ipEpoch is the last day in 1..d on which line's IP changed, or 0.
func (m *Market) ipEpoch(line int32, d int) int {
	if m.ipChurn <= 0 {
		return 0
	}
	for k := d; k >= 1; k-- {
		if unitFloat(hash3(m.seed, tagIPChurn, uint64(line)<<24|uint64(k))) < m.ipChurn {
			return k
		}
	}
	return 0
}

// appendIP appends household h's public IP on day d (0-based, from the
// scenario's start; earlier days count as day 0).
func (m *Market) appendIP(dst []byte, h int32, d int) []byte {
	hh := &m.households[h]
	e := m.ipEpoch(hh.line, max(d, 0))
	if e == 0 {
		return append(dst, hh.ip...)
	}
	u := hash3(m.seed, tagIPChurn^0xffff, uint64(hh.line)<<24|uint64(e))
	dst = strconv.AppendUint(dst, uint64(ispOctets[u%uint64(len(ispOctets))]), 10)
	for _, b := range [3]byte{byte(u >> 16), byte(u >> 24), byte(1 + (u>>32)%253)} {
		dst = strconv.AppendUint(append(dst, '.'), uint64(b), 10)
	}
	return dst
}

// IP returns household h's public IP on day d.
func (m *Market) IP(h int32, d int) string { return string(m.appendIP(nil, h, d)) }

// dayOf is the market day (0-based) of a unix time.
func (m *Market) dayOf(t int64) int {
	d := t - m.sc.Start.Unix()
	if d < 0 {
		return 0
	}
	return int(d / 86400)
}
