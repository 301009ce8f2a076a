package verify

import (
	"strconv"
	"testing"

	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A DLQ record cut to fit Kafka matches its row only as a prefix of it with
// the row's full length in the header; an uncut record matches only whole.
func TestSameDeadLetter(t *testing.T) {
	t.Parallel()
	key, value := []byte("order-1"), []byte("0123456789")
	cut := func(k, v string, length int) *kgo.Record {
		return &kgo.Record{Key: []byte(k), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderTruncated, Value: []byte(strconv.Itoa(length))}}}
	}
	full := len(key) + len(value)
	for _, c := range []struct {
		name string
		rec  *kgo.Record
		want bool
	}{
		{"whole", &kgo.Record{Key: key, Value: value}, true},
		{"whole but different", &kgo.Record{Key: key, Value: []byte("0123456780")}, false},
		{"whole but short, no header", &kgo.Record{Key: key, Value: value[:4]}, false},
		{"cut", cut("order-1", "0123", full), true},
		{"cut, not a prefix", cut("order-1", "9123", full), false},
		{"cut, key not a prefix", cut("order-2", "0123", full), false},
		{"cut, wrong length", cut("order-1", "0123", full+1), false},
	} {
		if got := sameDeadLetter(key, value, c.rec); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
