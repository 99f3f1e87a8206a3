package h2conn

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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

// TestH2InboundRapidReset feeds Inbound a client's streams, some reset, and
// checks which clients it cuts off: only those that reset most of many.
func TestH2InboundRapidReset(t *testing.T) {
	for _, tc := range []struct {
		name           string
		streams, reset int // reset: every reset-th stream is reset (1: all, 0: none)
		cut            bool
	}{
		{"no resets", 1000, 0, false},
		{"a few resets", 1000, 10, false},
		{"half reset", 2000, 2, false},
		{"every stream reset, a few", freeResets, 1, false},
		{"every stream reset, many", 1000, 1, true},
	} {
		var wire bytes.Buffer
		wire.WriteString(Preface)
		fr := http2.NewFramer(&wire, nil)
		fr.WriteSettings()
		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		for i := range tc.streams {
			id := uint32(2*i + 1)
			block.Reset()
			enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
			enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
			if tc.reset > 0 && i%tc.reset == 0 {
				fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		}
		_, err := io.Copy(io.Discard, NewInbound(&wire))
		if cut := errors.Is(err, ErrRapidReset); cut != tc.cut || !cut && err != nil {
			t.Errorf("%s: %v, want cut off %v", tc.name, err, tc.cut)
		}
	}
}
