package conversions

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// genBatch builds a realistic CAPI body of n events around testNow: website
// purchases, leads and carts from a shop with hashed em/ph/external_id, the
// browser's IP, UA, fbc and fbp, value, currency, order id and contents; and
// CTV/app events with a device IFA, its type and a household id. Every
// event_id holds 8 hex digits at the returned offsets, which stamp rewrites so
// that each iteration of a benchmark sends new events.
func genBatch(n int) (body []byte, idOffsets []int) {
	var sb strings.Builder
	sb.WriteString(`{"data":[`)
	names := []string{"Purchase", "Lead", "AddToCart", "CompleteRegistration", "ViewContent"}
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		t := testNow.Unix() - int64(i%3600)
		h := func(kind string) string {
			s, _ := HashUserData(nil, kind, []byte(fmt.Sprintf("user%d-%s@example.com", i, kind)))
			return string(s)
		}
		ph, _ := HashUserData(nil, "ph", []byte(fmt.Sprintf("+1 555 %07d", i)))
		name := names[i%len(names)]
		sb.WriteString(`{"event_name":"` + name + `","event_time":` + fmt.Sprint(t) + `,"event_id":"ord-`)
		idOffsets = append(idOffsets, sb.Len())
		sb.WriteString(`00000000-` + fmt.Sprintf("%04d", i) + `"`)
		if i%4 == 3 { // a CTV app conversion
			ifa := hex.EncodeToString([]byte(fmt.Sprintf("ifa-%012d", i)))
			sb.WriteString(`,"action_source":"app","user_data":{"ifa":"` + ifa[:8] + "-" + ifa[8:12] + "-" + ifa[12:16] + "-" + ifa[16:20] + "-" + ifa[20:32] +
				`","ifa_type":"rida","household_id":"hh-` + fmt.Sprint(i*7919%100000) + `","client_ip_address":"198.51.` + fmt.Sprint(i%256) + `.` + fmt.Sprint(i*13%256) +
				`","external_id":["` + h("external_id") + `"]},"app_data":{"advertiser_tracking_enabled":1,"extinfo":["a2","com.example.tv","1.0","1.0","12","Roku Ultra","en_US","EST","","1920","1080","1","1","64","32","America/New_York"]}`)
		} else {
			sb.WriteString(`,"action_source":"website","event_source_url":"https://shop.example.com/checkout/thanks?o=` + fmt.Sprint(i) +
				`","user_data":{"em":["` + h("em") + `"],"ph":["` + string(ph) + `"],"external_id":["` + h("external_id") +
				`"],"client_ip_address":"203.0.` + fmt.Sprint(i%256) + `.` + fmt.Sprint(i*31%256) +
				`","client_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36","fbc":"fb.1.1795620000000.IwAR3xExampleClickId` + fmt.Sprint(i) +
				`","fbp":"fb.1.1795001234567.` + fmt.Sprint(1000000000+i) + `"}`)
		}
		sb.WriteString(`,"custom_data":{"value":` + fmt.Sprintf("%d.%02d", 10+i%200, i%100) + `,"currency":"USD","order_id":"` + fmt.Sprint(880000+i) +
			`","content_type":"product","content_ids":["SKU-` + fmt.Sprint(i%50) + `"],"contents":[{"id":"SKU-` + fmt.Sprint(i%50) + `","quantity":1,"item_price":19.9}],"num_items":1}}`)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String()), idOffsets
}

// stamp writes iteration it as 8 hex digits into every event_id of body.
func stamp(body []byte, offsets []int, it uint32) {
	for _, o := range offsets {
		v := it
		for j := 7; j >= 0; j-- {
			body[o+j] = hexDigits[v&0xf]
			v >>= 4
		}
	}
}
