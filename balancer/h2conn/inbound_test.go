package h2conn

import (
	"slices"
	"testing"

	"golang.org/x/net/http2"
)

func TestH2InboundDedupSettings(t *testing.T) {
	type setting = http2.Setting
	for _, tc := range []struct {
		name     string
		in, want []setting
	}{
		{"no repeat", []setting{{ID: http2.SettingInitialWindowSize, Val: 100}, {ID: http2.SettingMaxFrameSize, Val: 1 << 15}},
			[]setting{{ID: http2.SettingInitialWindowSize, Val: 100}, {ID: http2.SettingMaxFrameSize, Val: 1 << 15}}},
		{"the last value", []setting{{ID: http2.SettingInitialWindowSize, Val: 100}, {ID: http2.SettingEnablePush, Val: 0}, {ID: http2.SettingInitialWindowSize, Val: 1}},
			[]setting{{ID: http2.SettingInitialWindowSize, Val: 1}, {ID: http2.SettingEnablePush, Val: 0}}},
		{"the smallest header table", []setting{{ID: http2.SettingHeaderTableSize, Val: 0}, {ID: http2.SettingHeaderTableSize, Val: 4096}},
			[]setting{{ID: http2.SettingHeaderTableSize, Val: 0}}},
		{"an invalid value stays", []setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 31}, {ID: http2.SettingInitialWindowSize, Val: 1}},
			[]setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 31}}},
	} {
		var p []byte
		for _, s := range tc.in {
			p = append(p, byte(s.ID>>8), byte(s.ID), byte(s.Val>>24), byte(s.Val>>16), byte(s.Val>>8), byte(s.Val))
		}
		n := dedupSettings(p)
		var got []setting
		for i := 0; i+6 <= n; i += 6 {
			got = append(got, setting{ID: http2.SettingID(p[i])<<8 | http2.SettingID(p[i+1]),
				Val: uint32(p[i+2])<<24 | uint32(p[i+3])<<16 | uint32(p[i+4])<<8 | uint32(p[i+5])})
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
