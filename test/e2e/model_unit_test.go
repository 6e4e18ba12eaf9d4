package e2e

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hop builds one history operation for the model tests.
func hop(client int, call, ret int64, in kvInput, out kvOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

const never = math.MaxInt64 / 2 // return time of an unknown-outcome op

func put(k, v string) kvInput             { return kvInput{Kind: opPut, Key: k, Value: v} }
func cas(k, v string, prev int64) kvInput { return kvInput{Kind: opCAS, Key: k, Value: v, Prev: prev} }
func get(k string) kvInput                { return kvInput{Kind: opGet, Key: k} }
func wrote(rev int64) kvOutput            { return kvOutput{OK: true, Rev: rev} }
func failed412() kvOutput                 { return kvOutput{} }
func unknown() kvOutput                   { return kvOutput{Unknown: true} }
func read(v string, rev int64) kvOutput   { return kvOutput{OK: true, Value: v, Rev: rev} }
func missing() kvOutput                   { return kvOutput{} }

func TestKVModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hist []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"put then read", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 11, 20, get("a"), read("x", 5)),
		}, porcupine.Ok},
		{"stale read after a newer acknowledged put", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 11, 20, put("a", "y"), wrote(7)),
			hop(1, 21, 30, get("a"), read("x", 5)),
		}, porcupine.Illegal},
		{"read concurrent with the first put may miss it", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 5, 15, get("a"), missing()),
		}, porcupine.Ok},
		{"acknowledged put lost", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 20, 30, get("a"), missing()),
		}, porcupine.Illegal},
		{"revision goes backwards", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 20, 30, put("a", "y"), wrote(3)),
		}, porcupine.Illegal},
		{"two writes of one key share a revision", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 20, 30, put("a", "y"), wrote(5)),
		}, porcupine.Illegal},
		{"read reports the wrong revision", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 20, 30, get("a"), read("x", 6)),
		}, porcupine.Illegal},
		{"cas on the current revision", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 20, 30, cas("a", "y", 5), wrote(8)),
			hop(1, 40, 50, get("a"), read("y", 8)),
		}, porcupine.Ok},
		{"cas succeeds on a stale revision", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 20, 30, cas("a", "y", 4), wrote(8)),
		}, porcupine.Illegal},
		{"cas fails on the current revision", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 20, 30, cas("a", "y", 5), failed412()),
		}, porcupine.Illegal},
		{"cas fails after a concurrent put", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(0, 20, 30, cas("a", "y", 5), failed412()),
			hop(1, 15, 25, put("a", "z"), wrote(7)),
		}, porcupine.Ok},
		{"create-only twice", []porcupine.Operation{
			hop(0, 0, 10, cas("a", "x", 0), wrote(3)),
			hop(1, 20, 30, cas("a", "y", 0), wrote(9)),
		}, porcupine.Illegal},
		{"create-only, then 412", []porcupine.Operation{
			hop(0, 0, 10, cas("a", "x", 0), wrote(3)),
			hop(1, 20, 30, cas("a", "y", 0), failed412()),
			hop(1, 40, 50, get("a"), read("x", 3)),
		}, porcupine.Ok},
		{"unknown put seen later, then cas on its revision", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 12, never, put("a", "y"), unknown()),
			hop(2, 20, 30, get("a"), read("y", 9)),
			hop(2, 40, 50, cas("a", "z", 9), wrote(12)),
			hop(0, 60, 70, get("a"), read("z", 12)),
		}, porcupine.Ok},
		{"unknown put never seen", []porcupine.Operation{
			hop(1, 0, never, put("a", "y"), unknown()),
			hop(2, 20, 30, get("a"), missing()),
		}, porcupine.Ok},
		{"unknown put seen with a revision older than its predecessor", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 12, never, put("a", "y"), unknown()),
			hop(2, 20, 30, get("a"), read("y", 4)),
		}, porcupine.Illegal},
		{"unknown cas may have applied", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 12, never, cas("a", "y", 5), unknown()),
			hop(2, 20, 30, get("a"), read("y", 6)),
		}, porcupine.Ok},
		{"unknown cas with a stale revision cannot apply", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 12, never, cas("a", "y", 4), unknown()),
			hop(2, 20, 30, get("a"), read("y", 6)),
		}, porcupine.Illegal},
		{"value read before it was written", []porcupine.Operation{
			hop(2, 0, 10, get("a"), read("x", 5)),
			hop(0, 20, 30, put("a", "x"), wrote(5)),
		}, porcupine.Illegal},
		{"keys are independent", []porcupine.Operation{
			hop(0, 0, 10, put("a", "x"), wrote(5)),
			hop(1, 20, 30, get("b"), missing()),
			hop(1, 40, 50, get("a"), read("x", 5)),
		}, porcupine.Ok},
	}
	model := kvModel.ToModel()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, info := porcupine.CheckOperationsVerbose(model, tc.hist, 5*time.Second)
			assert.Equal(t, tc.want, got, "history: %v", tc.hist)
			if got == porcupine.Illegal {
				path := filepath.Join(t.TempDir(), "lin.html")
				require.NoError(t, porcupine.VisualizePath(model, info, path))
				st, err := os.Stat(path)
				require.NoError(t, err)
				assert.Positive(t, st.Size())
			}
		})
	}
}
