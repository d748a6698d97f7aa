package aggregate_test

import (
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// TestFieldIDRoundTrip: a FieldID spells its field back exactly, for
// every field Store writes and for fields it would not (which a tracker
// must tombstone by the name Redis holds).
func TestFieldIDRoundTrip(t *testing.T) {
	key := series.Key("lat", []series.Label{{Name: "op", Value: `a"|b1}`}})
	cases := []struct {
		field string
		want  aggregate.FieldID
	}{
		{"up", aggregate.FieldID{Key: "up", Bucket: aggregate.PlainBucket}},
		{key, aggregate.FieldID{Key: key, Bucket: aggregate.PlainBucket}},
		{aggregate.BucketField(key, 0), aggregate.FieldID{Key: key, Bucket: 0}},
		{aggregate.BucketField(key, 63), aggregate.FieldID{Key: key, Bucket: 63}},
		{aggregate.SumField(key), aggregate.FieldID{Key: key, Bucket: aggregate.SumBucket}},
		{key + "|b07", aggregate.FieldID{Key: key + "|b07", Bucket: aggregate.PlainBucket}},
		{key + "|b99999999999", aggregate.FieldID{Key: key + "|b99999999999", Bucket: aggregate.PlainBucket}},
	}
	for _, c := range cases {
		id := aggregate.ParseField(c.field)
		if id != c.want {
			t.Errorf("ParseField(%q) = %+v, want %+v", c.field, id, c.want)
		}
		if got := id.Name(); got != c.field {
			t.Errorf("ParseField(%q).Name() = %q", c.field, got)
		}
	}
}

// TestEachFieldMatchesFields: EachField gives the fields Fields spells,
// in the same order, with the state's own key strings.
func TestEachFieldMatchesFields(t *testing.T) {
	d := &aggregate.Dump{
		Node:  "n1",
		Marks: map[string]string{"stream": "3"},
		Meta: map[string]string{
			"req_total": `{"type":"counter"}`,
			"lat":       `{"type":"histogram","buckets":[0.1,1]}`,
		},
		Series: map[string]string{
			`req_total{code="200"}`: "2.5",
			`lat{op="a"}|b0`:        "2",
			`lat{op="a"}|b2`:        "1",
			`lat{op="a"}|sum`:       "3.5",
		},
	}
	st, err := d.State()
	if err != nil {
		t.Fatal(err)
	}
	h := aggregate.Held{State: st}
	var names, values []string
	h.Fields(nil, func(f, v []byte) { names, values = append(names, string(f)), append(values, string(v)) })
	i := 0
	h.EachField(nil, func(id aggregate.FieldID, v []byte) {
		if i >= len(names) || id.Name() != names[i] || string(v) != values[i] {
			t.Errorf("field %d: EachField %q=%q, Fields %q", i, id.Name(), v, names)
		}
		i++
	})
	if i != len(names) || len(names) != len(d.Series) {
		t.Fatalf("EachField gave %d fields, Fields %d, the dump has %d", i, len(names), len(d.Series))
	}
}
