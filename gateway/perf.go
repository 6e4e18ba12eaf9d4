package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/gateway/dashboard"
	"github.com/cavedb/cave/internal/logbuf"
)

// LogSource holds a node's recent log records; *logbuf.Buffer implements
// it.
type LogSource interface {
	Query(q logbuf.Query) []logbuf.Entry
}

var _ LogSource = (*logbuf.Buffer)(nil)

// Limits of GET /api/v1/perf/logs?limit=.
const (
	defaultLogLimit = 200
	maxLogLimit     = 10000
)

// metricsHandler serves the Prometheus text (or OpenMetrics) format of
// everything gathered by g. A collector that fails is logged as an error;
// a scraper that goes away before the answer is written is not.
func metricsHandler(g prometheus.Gatherer, lg *slog.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      scrapeLog{lg: lg},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// scrapeLog is promhttp's error log: an error of the connection to the
// scraper (it closed early, or timed out) is logged at debug, anything
// else (a collector that failed) at error.
type scrapeLog struct{ lg *slog.Logger }

// Println implements promhttp.Logger.
func (l scrapeLog) Println(v ...any) {
	level := slog.LevelError
	for _, x := range v {
		if err, ok := x.(error); ok && clientGone(err) {
			level = slog.LevelDebug
		}
	}
	l.lg.Log(context.Background(), level, "metrics scrape: "+strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// clientGone reports whether err is the failure of writing to a client
// that closed the connection or stopped reading.
func clientGone(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, http.ErrHandlerTimeout) || errors.Is(err, context.Canceled) || errors.As(err, &ne) && ne.Timeout()
}

// dashboardHandler serves the Grafana dashboard JSON.
func dashboardHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(dashboard.JSON)
}

// logsResponse is the body of GET /api/v1/perf/logs.
type logsResponse struct {
	Entries []logbuf.Entry `json:"entries"`
}

// logsHandler serves GET /api/v1/perf/logs?level=&limit=&since=: the newest
// limit records (default 200) at level or above (default: every stored
// record) logged strictly after since (RFC 3339), oldest first.
func logsHandler(src LogSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parseLogQuery(r)
		if err != nil {
			writeError(w, status.New(codes.InvalidArgument, err.Error()))
			return
		}
		entries := src.Query(q)
		if entries == nil {
			entries = []logbuf.Entry{}
		}
		writeJSON(w, http.StatusOK, logsResponse{Entries: entries})
	}
}

func parseLogQuery(r *http.Request) (logbuf.Query, error) {
	v := r.URL.Query()
	q := logbuf.Query{MinLevel: slog.Level(math.MinInt), Limit: defaultLogLimit}
	if s := v.Get("level"); s != "" {
		if err := q.MinLevel.UnmarshalText([]byte(s)); err != nil {
			return q, fmt.Errorf("level must be debug, info, warn or error, got %q", s)
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLogLimit {
			return q, fmt.Errorf("limit must be an integer in [1, %d], got %q", maxLogLimit, s)
		}
		q.Limit = n
	}
	if s := v.Get("since"); s != "" {
		// An unescaped "+" of a zone offset arrives as a space.
		t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(strings.TrimSpace(s), " ", "+"))
		if err != nil {
			return q, fmt.Errorf("since must be an RFC 3339 time such as 2006-01-02T15:04:05Z, got %q", s)
		}
		q.Since = t
	}
	return q, nil
}
