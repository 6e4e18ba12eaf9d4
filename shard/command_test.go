package shard

import (
	"bytes"
	"errors"
	"math"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommandRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ops  []Op
	}{
		{"empty", nil},
		{"put", []Op{put("a/b", "v")}},
		{"put empty value", []Op{{Kind: OpPut, Key: []byte("k")}}},
		{"delete", []Op{del("a")}},
		{"conditional", []Op{putIf("a", "v", 0), delIf("b", 7), putIf("c", "", math.MaxInt64), delIf("d", -1)}},
		{"mixed", []Op{put("x", "1"), del("x"), put("y", string(bytes.Repeat([]byte{0xff}, 300)))}},
		{"max key", []Op{put(string(bytes.Repeat([]byte("k"), MaxKeyBytes)), "v")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := EncodeCommand([]byte("junk"), tc.ops)
			require.Equal(t, "junk", string(cmd[:4]), "EncodeCommand must append")
			got, err := DecodeCommand(nil, cmd[4:])
			require.NoError(t, err)
			require.Len(t, got, len(tc.ops))
			for i, want := range tc.ops {
				assert.Equal(t, want.Kind, got[i].Kind, "op %d", i)
				assert.Equal(t, string(want.Key), string(got[i].Key), "op %d", i)
				if want.Kind == OpPut {
					assert.Equal(t, string(want.Value), string(got[i].Value), "op %d", i)
				} else {
					assert.Nil(t, got[i].Value, "op %d: delete carries no value", i)
				}
				assert.Equal(t, want.HasPrevRevision, got[i].HasPrevRevision, "op %d", i)
				assert.Equal(t, want.PrevRevision, got[i].PrevRevision, "op %d", i)
			}
		})
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	t.Parallel()
	good := EncodeCommand(nil, []Op{put("key", "value"), delIf("k2", 5)})
	cases := []struct {
		name string
		cmd  []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"unknown format", append([]byte{9}, good[1:]...)},
		{"format only", []byte{commandFormatV1}},
		{"count too large", []byte{commandFormatV1, 5, byte(OpPut), 1, 'k', 0}},
		{"zero kind", EncodeCommand(nil, []Op{{Kind: 0, Key: []byte("k")}})},
		{"kind 3", EncodeCommand(nil, []Op{{Kind: 3, Key: []byte("k")}})},
		{"large kind", EncodeCommand(nil, []Op{{Kind: 200, Key: []byte("k")}})},
		{"reserved flag", []byte{commandFormatV1, 1, byte(OpDelete) | 0x10, 1, 'k'}},
		{"empty key", EncodeCommand(nil, []Op{put("", "v")})},
		{"oversize key", EncodeCommand(nil, []Op{put(string(make([]byte, MaxKeyBytes+1)), "v")})},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"value past end", []byte{commandFormatV1, 1, byte(OpPut), 1, 'k', 9, 'v'}},
		{"bad varint", []byte{commandFormatV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := []Op{put("keep", "me")}
			got, err := DecodeCommand(dst, tc.cmd)
			require.ErrorIs(t, err, ErrBadCommand)
			assert.Len(t, got, 1, "dst must come back unextended")
		})
	}
}

func TestCodecDoesNotAllocate(t *testing.T) {
	ops := []Op{put("users/42/name", "alice"), delIf("users/42/old", 17)}
	buf := make([]byte, 0, 256)
	dst := make([]Op, 0, 4)
	res := make([]OpResult, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		buf = EncodeCommand(buf[:0], ops)
		var err error
		if dst, err = DecodeCommand(dst[:0], buf); err != nil {
			t.Fatal(err)
		}
		r, _ := encodeSingle(ok(12345))
		if res, err = AppendResults(res[:0], r); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestResultsRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		rs   []OpResult
	}{
		{"none", nil},
		{"ok", []OpResult{ok(1)}},
		{"not found", []OpResult{{Code: ResultNotFound}}},
		{"condition failed", []OpResult{{Code: ResultConditionFailed, Revision: 99}}},
		{"bad command", []OpResult{{Code: ResultBadCommand}}},
		{"huge revision", []OpResult{ok(math.MaxInt64)}},
		{"many", []OpResult{ok(7), {Code: ResultNotFound}, {Code: ResultConditionFailed, Revision: 3}, ok(7)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := encodeResults(tc.rs)
			if len(tc.rs) == 1 && tc.rs[0].Revision <= maxSingleRev {
				assert.Nil(t, r.Data, "a single result must not allocate")
			}
			got, err := DecodeResults(r)
			require.NoError(t, err)
			assert.Equal(t, len(tc.rs), len(got))
			for i := range tc.rs {
				assert.Equal(t, tc.rs[i], got[i], "result %d", i)
			}
		})
	}
}

func TestDecodeResultsRejects(t *testing.T) {
	t.Parallel()
	for _, r := range []sm.Result{
		{Value: 5},                           // no single-result flag
		{Value: singleResultFlag | 9},        // unknown code
		{Data: []byte{}},                     // no format
		{Data: []byte{2, 0, 1}, Value: 1},    // unknown format
		{Data: []byte{1, 9, 1}, Value: 1},    // unknown code
		{Data: []byte{1, 0, 0x80}, Value: 1}, // truncated revision
		{Data: []byte{1, 0, 1}, Value: 2},    // count mismatch
	} {
		_, err := DecodeResults(r)
		assert.True(t, errors.Is(err, ErrBadResult), "DecodeResults(%+v) = %v, want ErrBadResult", r, err)
	}
}

func TestEnumStrings(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "put", OpPut.String())
	assert.Equal(t, "delete", OpDelete.String())
	assert.Equal(t, "OpKind(9)", OpKind(9).String())
	assert.Equal(t, "ok", ResultOK.String())
	assert.Equal(t, "not_found", ResultNotFound.String())
	assert.Equal(t, "condition_failed", ResultConditionFailed.String())
	assert.Equal(t, "bad_command", ResultBadCommand.String())
	assert.Equal(t, "ResultCode(9)", ResultCode(9).String())
}

// FuzzDecodeCommand checks that DecodeCommand never panics and that whatever
// it accepts encodes back to the same bytes (the encoding is canonical).
func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{commandFormatV1, 0})
	f.Add(EncodeCommand(nil, []Op{put("a/b", "value")}))
	f.Add(EncodeCommand(nil, []Op{putIf("a", "v", 0), delIf("b", 42), del("c")}))
	f.Add([]byte{commandFormatV1, 1, byte(OpPut) | opFlagPrevRev, 1, 'k', 0, 0x81})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		ops, err := DecodeCommand(nil, cmd)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		if again := EncodeCommand(nil, ops); !bytes.Equal(again, cmd) {
			// Varints have one canonical form only when minimal; accept a
			// longer input if it decodes to the same ops.
			ops2, err := DecodeCommand(nil, again)
			if err != nil || len(ops2) != len(ops) {
				t.Fatalf("re-encoding %x gave %x, which does not decode: %v", cmd, again, err)
			}
		}
	})
}
