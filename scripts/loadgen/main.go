// Command loadgen drives a bounded REST load against cave nodes and prints
// throughput and latency percentiles. It is a measuring tool, not a test.
//
//	go run ./scripts/loadgen -endpoints http://127.0.0.1:8740 -op put -n 20000 -c 32
//
// Against a node with TLS, give the CA and a client certificate:
//
//	go run ./scripts/loadgen -endpoints https://127.0.0.1:8740 -cacert certs/ca.crt -cert certs/root.crt -key certs/root.key
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	endpoints := flag.String("endpoints", "http://127.0.0.1:8740", "comma-separated base URLs of cave nodes")
	op := flag.String("op", "put", "put, get or mixed (90% get)")
	total := flag.Int("n", 20000, "total operations (upper bound)")
	conc := flag.Int("c", 32, "concurrent clients")
	maxDur := flag.Duration("max-duration", 60*time.Second, "stop after this long even if -n is not reached")
	valueSize := flag.Int("value-size", 128, "value size in bytes")
	keys := flag.Int("keys", 10000, "number of distinct keys")
	prefix := flag.String("prefix", "bench/", "key prefix")
	caFile := flag.String("cacert", "", "PEM file of the CA that signed the nodes' certificates (https endpoints)")
	certFile := flag.String("cert", "", "PEM file of the client certificate to present (with -key)")
	keyFile := flag.String("key", "", "PEM file of the client certificate's key")
	flag.Parse()

	tlsCfg, err := clientTLS(*caFile, *certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	urls := strings.Split(*endpoints, ",")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc, MaxIdleConns: *conc * len(urls), TLSClientConfig: tlsCfg}}
	value := bytes.Repeat([]byte("x"), *valueSize)
	var next, errs atomic.Int64
	lat := make([][]time.Duration, *conc)
	deadline := time.Now().Add(*maxDur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for next.Add(1) <= int64(*total) && time.Now().Before(deadline) {
				base := urls[rng.IntN(len(urls))]
				key := fmt.Sprintf("%s%08d", *prefix, rng.IntN(*keys))
				isGet := *op == "get" || (*op == "mixed" && rng.IntN(10) != 0)
				var req *http.Request
				if isGet {
					req, _ = http.NewRequest(http.MethodGet, base+"/api/v1/kv/"+key, nil)
				} else {
					req, _ = http.NewRequest(http.MethodPut, base+"/api/v1/kv/"+key, bytes.NewReader(value))
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && !(isGet && resp.StatusCode == http.StatusNotFound) {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: no successful operations; errors:", errs.Load())
		os.Exit(1)
	}
	pct := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)] }
	fmt.Printf("op=%s ok=%d errors=%d elapsed=%.2fs throughput=%.0f ops/s p50=%s p99=%s max=%s\n",
		*op, len(all), errs.Load(), elapsed.Seconds(), float64(len(all))/elapsed.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond))
}

// clientTLS returns the TLS settings for https endpoints: the CA in caFile
// (the system roots when empty) and the client key pair, if given.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cacert %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("-cert and -key go together")
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}
