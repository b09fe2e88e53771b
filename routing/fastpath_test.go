package routing

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/upstream"
)

// TestOnlyForwardsKeepsEveryOtherFeatureOffTheLoops sets each field of
// Filters, Admission and Timeouts on an otherwise plain route in turn:
// only the HSTS header, a body limit (on a request without a body) and
// per-read and per-write backend timeouts may leave a route to the event
// loops, which apply nothing else. A field added to one of these structs
// fails here until onlyLoopFeatures or onlyBoundsBody decide about it.
func TestOnlyForwardsKeepsEveryOtherFeatureOffTheLoops(t *testing.T) {
	backend := &upstream.Backend{Name: "b", Endpoints: []string{"127.0.0.1:1"}}
	req := httptest.NewRequest("GET", "https://a.example.test/", nil)
	if !(&Route{Backend: backend}).onlyForwards(req) {
		t.Fatal("a plain route is not served by the loops")
	}
	loopable := map[string]bool{"HSTS": true, "MaxBodyBytes": true, "BackendRead": true, "BackendSend": true}

	ft := reflect.TypeFor[Filters]()
	for i := range ft.NumField() {
		field := ft.Field(i)
		f := &Filters{HSTS: "max-age=600"}
		setNonZero(t, reflect.ValueOf(f).Elem().Field(i), field.Name)
		got := (&Route{Backend: backend, Filters: f}).onlyForwards(req)
		if got != loopable[field.Name] {
			t.Errorf("Filters.%s set: onlyForwards %v, want %v", field.Name, got, loopable[field.Name])
		}
	}
	at := reflect.TypeFor[Admission]()
	for i := range at.NumField() {
		field := at.Field(i)
		a := &Admission{}
		setNonZero(t, reflect.ValueOf(a).Elem().Field(i), field.Name)
		got := (&Route{Backend: backend, Admission: a}).onlyForwards(req)
		if got != loopable[field.Name] {
			t.Errorf("Admission.%s set: onlyForwards %v, want %v", field.Name, got, loopable[field.Name])
		}
	}
	tt := reflect.TypeFor[Timeouts]()
	for i := range tt.NumField() {
		field := tt.Field(i)
		var timeouts Timeouts
		reflect.ValueOf(&timeouts).Elem().Field(i).SetInt(int64(2 * time.Second))
		got := (&Route{Backend: backend, Timeouts: timeouts}).onlyForwards(req)
		if got != loopable[field.Name] {
			t.Errorf("Timeouts.%s set: onlyForwards %v, want %v", field.Name, got, loopable[field.Name])
		}
	}
	// A read bound below the loops' own wait would not hold there.
	if (&Route{Backend: backend, Timeouts: Timeouts{BackendRead: 500 * time.Millisecond}}).onlyForwards(req) {
		t.Error("a read timeout under http1.LoopExchangeMax left to the loops")
	}
	withBody := httptest.NewRequest("POST", "https://a.example.test/", strings.NewReader("x"))
	if (&Route{Backend: backend, Admission: &Admission{MaxBodyBytes: 1}}).onlyForwards(withBody) {
		t.Error("a request with a body to bound left to the loops")
	}
}

// setNonZero gives v a value other than its zero value.
func setNonZero(t *testing.T, v reflect.Value, name string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[[]netip.Prefix]() {
			v.Set(reflect.ValueOf([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	default:
		t.Fatalf("field %s: no non-zero value for kind %s", name, v.Kind())
	}
}

// TestLoopOptionsSetHSTS checks the loops' response edit: the HSTS value
// on responses to TLS requests, nothing over plain HTTP or without it.
func TestLoopOptionsSetHSTS(t *testing.T) {
	route := &Route{Filters: &Filters{HSTS: "max-age=600"}}
	tlsReq := httptest.NewRequest("GET", "https://a.example.test/", nil)
	o := loopOptions(route, tlsReq)
	if o == nil || o != loopOptions(route, tlsReq) {
		t.Fatalf("loopOptions %v: want one shared edit per value", o)
	}
	h := http.Header{"Strict-Transport-Security": {"max-age=1"}}
	o.EditResponseHeader(h)
	if got := h.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=600" {
		t.Errorf("header after the edit %q, want the route's value alone", got)
	}
	if loopOptions(route, httptest.NewRequest("GET", "http://a.example.test/", nil)) != nil {
		t.Error("HSTS edit for a plain-HTTP request")
	}
	if loopOptions(&Route{}, tlsReq) != nil {
		t.Error("options for a plain route")
	}
	timed := &Route{Timeouts: Timeouts{BackendRead: 90 * time.Second, BackendSend: 30 * time.Second}}
	if o := loopOptions(timed, tlsReq); o == nil || o.ReadTimeout != 90*time.Second || o.SendTimeout != 30*time.Second || o.EditResponseHeader != nil {
		t.Errorf("options for proxy-read-timeout 90 and proxy-send-timeout 30: %+v", o)
	}
}
