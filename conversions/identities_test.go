package conversions

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

func newEraserEnv(t testing.TB) (*testEnv, *Eraser, *signals.Index) {
	e := newTestEnv(t, nil)
	index := signals.NewIndex(signals.IndexConfig{MaxExposures: 100})
	m := model.New(model.Config{}, attrCampaigns)
	a := NewAttributor(AttributionConfig{}, AttributorDeps{
		Index: index, Model: m, Datasets: map[string]string{testDataset: "demo"}, Campaigns: attrCampaigns,
		CampaignNumber: func(id string) (uint16, bool) {
			for i, c := range attrCampaigns {
				if c.ID == id {
					return uint16(i), true
				}
			}
			return 0, false
		},
	})
	return e, NewEraser(e.s, a, index), index
}

func deleteIdentities(er *Eraser, token, body string) (int, map[string]any, *apierr.Error) {
	var ctx fasthttp.RequestCtx
	adv, ok := er.svc.tenants.Advertiser([]byte(token)) // the server's front door
	if !ok {
		return 401, nil, apierr.Unauthorized("Authorization: unknown token")
	}
	if err := er.HandleDeleteIdentities(&ctx, bodyOf([]byte(body)), adv); err != nil {
		e := apierr.As(err)
		return e.Status, nil, e
	}
	var out map[string]any
	json.Unmarshal(ctx.Response.Body(), &out)
	return ctx.Response.StatusCode(), out, nil
}

func TestDeleteIdentitiesValidation(t *testing.T) {
	_, er, index := newEraserEnv(t)
	h := signals.NewHasher([]byte(testSecret))
	ip := h.ID(signals.IDIP, []byte("203.0.113.9"))
	index.Add(signals.IndexedExposure{TS: 1, Campaign: 0}, []signals.ID{ip})
	f := func(token, body string, wantStatus int, wantField string) {
		t.Helper()
		status, _, err := deleteIdentities(er, token, body)
		if status != wantStatus {
			t.Fatalf("%s: status %d, want %d (%v)", body, status, wantStatus, err)
		}
		if wantField != "" && (err == nil || len(err.Details) == 0 || err.Details[0].Field != wantField) {
			t.Fatalf("%s: details %+v, want field %s", body, err, wantField)
		}
	}
	f("nope", `{"em":"a@b.c"}`, 401, "")
	f(testToken, `[]`, 400, "")
	f(testToken, `{}`, 400, "")
	f(testToken, `{"em":5}`, 400, "em")
	f(testToken, `{"ip":["not-an-ip"]}`, 400, "ip[0]")
	f(testToken, `{"shoe_size":"44"}`, 400, "shoe_size")
	status, out, _ := deleteIdentities(er, testToken, `{"client_ip_address":"203.0.113.9","em":["Jane.Doe@Example.com "]}`)
	if status != 200 || out["identities"] != 2.0 || out["exposures_removed"] != 1.0 {
		t.Fatalf("delete: %d %v", status, out)
	}
}

// FuzzDeleteIdentities: any body gets a JSON answer or an API error, never a
// panic.
func FuzzDeleteIdentities(f *testing.F) {
	f.Add(`{"em":["jane.doe@example.com"],"ph":"+1 555 123 4567","client_ip_address":["203.0.113.9","::1"],"ifa":"7A2016D7-17B0-572F-A7A6-13F89A81D905"}`)
	f.Add(`{"em":null,"household_id":["hh-1"],"external_id":"x"}`)
	f.Add(`{"em":[1,{}],"ip":"1.2.3"}`)
	_, er, _ := newEraserEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		status, _, err := deleteIdentities(er, testToken, body)
		if err == nil && status != 200 {
			t.Fatalf("status %d without an error", status)
		}
	})
}
