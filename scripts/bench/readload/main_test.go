package main

import (
	"slices"
	"testing"
)

func TestDrawScheduleMarksFirstReads(t *testing.T) {
	pick, first := drawSchedule(5000, 700)
	seen := map[int32]bool{}
	for i, k := range pick {
		if k < 0 || k >= 700 {
			t.Fatalf("request %d picks id %d of 700", i, k)
		}
		if first[i] == seen[k] {
			t.Fatalf("request %d (id %d): first = %v after the id was seen = %v", i, k, first[i], seen[k])
		}
		seen[k] = true
	}
	if len(seen) < 690 {
		t.Fatalf("5,000 draws over 700 ids reached only %d", len(seen))
	}
	again, _ := drawSchedule(5000, 700)
	if !slices.Equal(pick, again) {
		t.Fatal("two draws differ: runs would read different ids")
	}
}
