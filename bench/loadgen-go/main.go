// Command loadgen-go is the benchmarks' second load generator: the same
// workload as bench/cluster/loadgen.ts (N clients, each with one request in
// flight, spread over M connections, fixed-size values over a fixed key
// set), issued through etcd's own Go client (go.etcd.io/etcd/clientv3, 3.4)
// instead of the etcd3 npm client. It exists because one Node process with
// the etcd3 client cannot issue more than about 7,600 requests a second on
// the benchmark machine (docs/BENCHMARKS.md), which caps what the writes
// benchmark can measure; this one costs far less CPU per request, and says
// how much it used so that a report can show it was not the bottleneck.
//
// It prints one JSON line on stdout, shaped like the Node generator's
// LoadResult (ops, errors, seconds, opsPerSecond, latencyMs, cdf,
// loadgenCpuSeconds) plus a few fields of its own. Latencies are exact: every
// measured request's latency is kept and sorted at the end.
//
// Built by bench/cluster/go-loadgen.ts in GOPATH mode against Debian's
// golang-etcd-server-dev (GO111MODULE=off, GOPATH=<dir>:/usr/share/gocode);
// it uses the Go standard library and the etcd client only.
//
//	loadgen-go -endpoints 127.0.0.1:2379 -clients 16 -duration 10s -op put
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// latencyMs holds latency quantiles in milliseconds, named as in the Node generator's LoadResult.
type latencyMs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// result is the one JSON line the generator prints. Invariants: ops is the
// number of latencies measured; opsPerSecond = ops / seconds; the CPU fields
// cover [start, end) of the measured interval only.
type result struct {
	Generator    string       `json:"generator"`
	Op           string       `json:"op"`
	Clients      int          `json:"clients"`
	Connections  int          `json:"connections"`
	Ops          int          `json:"ops"`
	Errors       int64        `json:"errors"`
	FirstError   string       `json:"firstError,omitempty"`
	Seconds      float64      `json:"seconds"`
	OpsPerSecond float64      `json:"opsPerSecond"`
	LatencyMs    latencyMs    `json:"latencyMs"`
	Cdf          [][2]float64 `json:"cdf"`
	// CPU seconds (user + system) this process used in the measured interval.
	LoadgenCPUSeconds  float64 `json:"loadgenCpuSeconds"`
	LoadgenUserSeconds float64 `json:"loadgenUserSeconds"`
	LoadgenSysSeconds  float64 `json:"loadgenSysSeconds"`
	GoVersion          string  `json:"goVersion"`
	GoMaxProcs         int     `json:"gomaxprocs"`
}

// options are the command-line flags.
type options struct {
	endpoints   []string
	clients     int
	connections int
	duration    time.Duration
	requests    int
	warmup      time.Duration
	keyBytes    int
	valueBytes  int
	keys        int
	op          string
	timeout     time.Duration
	user        string
}

func parseOptions() options {
	var o options
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated host:port list; connection i goes to endpoint i mod len")
	flag.IntVar(&o.clients, "clients", 1, "concurrent workers, each with one request in flight")
	flag.IntVar(&o.connections, "conns", 0, "client instances (gRPC connections) the workers share; 0 means min(clients, 16)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured interval (ignored when -requests is set)")
	flag.IntVar(&o.requests, "requests", 0, "measure this many requests instead of a duration")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before the measured interval")
	flag.IntVar(&o.keyBytes, "key-bytes", 0, "key length; 0 means the Node generator's keys, k0 .. k<keys-1>")
	flag.IntVar(&o.valueBytes, "value-bytes", 256, "value length in bytes")
	flag.IntVar(&o.keys, "keys", 1000, "distinct keys written or read")
	flag.StringVar(&o.op, "op", "put", "put, or get (linearizable range of one key)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of one request")
	flag.StringVar(&o.user, "user", "", "name:password to authenticate as (etcd auth); empty: none")
	flag.Parse()
	for _, e := range strings.Split(*endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			o.endpoints = append(o.endpoints, e)
		}
	}
	if o.connections <= 0 {
		o.connections = o.clients
		if o.connections > 16 {
			o.connections = 16
		}
	}
	if len(o.endpoints) == 0 || o.clients < 1 || o.keys < 1 || o.valueBytes < 0 || (o.op != "put" && o.op != "get") {
		fmt.Fprintln(os.Stderr, "loadgen-go: need at least one endpoint, -clients >= 1, -keys >= 1, -value-bytes >= 0 and -op put|get")
		os.Exit(2)
	}
	return o
}

// keyNames builds the key set once, so that the loop does not format keys.
func keyNames(o options) []string {
	names := make([]string, o.keys)
	for i := range names {
		k := fmt.Sprintf("k%d", i)
		if o.keyBytes > len(k) {
			k = "k" + strings.Repeat("0", o.keyBytes-len(k)) + k[1:]
		}
		names[i] = k
	}
	return names
}

// cpuSeconds returns this process's user and system CPU time so far.
func cpuSeconds() (user, sys float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN(), math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime), tv(ru.Stime)
}

// quantile returns the value at fraction q of the sorted latencies (nearest rank), in ms.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i]) / 1e6
}

const (
	phaseWarmup int32 = iota
	phaseMeasuring
	phaseDone
)

func main() {
	o := parseOptions()
	names := keyNames(o)
	value := strings.Repeat("v", o.valueBytes)

	clients := make([]*clientv3.Client, o.connections)
	for i := range clients {
		cfg := clientv3.Config{Endpoints: []string{o.endpoints[i%len(o.endpoints)]}, DialTimeout: 5 * time.Second}
		if name, password, found := strings.Cut(o.user, ":"); found {
			cfg.Username, cfg.Password = name, password
		}
		c, err := clientv3.New(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen-go: connect:", err)
			os.Exit(1)
		}
		defer c.Close()
		clients[i] = c
	}
	if o.op == "get" {
		// Reads need keys to read: write them once, like the Node generator.
		for _, k := range names {
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			_, err := clients[0].Put(ctx, k, value)
			cancel()
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen-go: preload:", err)
				os.Exit(1)
			}
		}
	}

	var phase atomic.Int32
	var tickets atomic.Int64 // requests claimed in -requests mode
	var errors atomic.Int64
	var firstError atomic.Value
	perWorker := make([][]time.Duration, o.clients)
	var wg sync.WaitGroup
	for w := 0; w < o.clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			kv := clients[w%len(clients)]
			lat := make([]time.Duration, 0, 4096)
			for i := w; ; i++ {
				p := phase.Load()
				if p == phaseDone {
					break
				}
				ticketed := false
				if o.requests > 0 && p == phaseMeasuring {
					if tickets.Add(1) > int64(o.requests) {
						break
					}
					ticketed = true
				}
				key := names[i%len(names)]
				ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
				t0 := time.Now()
				var err error
				if o.op == "put" {
					_, err = kv.Put(ctx, key, value)
				} else {
					_, err = kv.Get(ctx, key)
				}
				d := time.Since(t0)
				cancel()
				counted := ticketed || (o.requests == 0 && phase.Load() == phaseMeasuring)
				if !counted {
					continue
				}
				if err != nil {
					if errors.Add(1) == 1 {
						firstError.Store(err.Error())
					}
					continue
				}
				lat = append(lat, d)
			}
			perWorker[w] = lat
		}(w)
	}

	time.Sleep(o.warmup)
	u0, s0 := cpuSeconds()
	start := time.Now()
	phase.Store(phaseMeasuring)
	var end time.Time
	if o.requests > 0 {
		wg.Wait() // the workers stop when the tickets run out
		end = time.Now()
	} else {
		time.Sleep(o.duration)
		phase.Store(phaseDone)
		end = time.Now()
	}
	u1, s1 := cpuSeconds()
	phase.Store(phaseDone)
	wg.Wait()

	var all []time.Duration
	for _, l := range perWorker {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	var total time.Duration
	for _, d := range all {
		total += d
	}
	seconds := end.Sub(start).Seconds()
	r := result{
		Generator: "go", Op: o.op, Clients: o.clients, Connections: o.connections,
		Ops: len(all), Errors: errors.Load(), Seconds: seconds, OpsPerSecond: float64(len(all)) / seconds,
		LatencyMs: latencyMs{
			P50: quantile(all, 0.50), P90: quantile(all, 0.90), P99: quantile(all, 0.99), P999: quantile(all, 0.999),
			Max: quantile(all, 1), Mean: math.NaN(),
		},
		LoadgenCPUSeconds: (u1 - u0) + (s1 - s0), LoadgenUserSeconds: u1 - u0, LoadgenSysSeconds: s1 - s0,
		GoVersion: runtime.Version(), GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	if len(all) > 0 {
		r.LatencyMs.Mean = float64(total) / float64(len(all)) / 1e6
	}
	if e, ok := firstError.Load().(string); ok {
		r.FirstError = e
	}
	// The quantile function at every half percentile, as the Node generator reports it (for plots).
	for p := 0; p <= 200; p++ {
		q := float64(p) / 200
		r.Cdf = append(r.Cdf, [2]float64{quantile(all, q), q})
	}
	// JSON has no NaN: an empty run reports zeros instead.
	for _, v := range []*float64{&r.LatencyMs.P50, &r.LatencyMs.P90, &r.LatencyMs.P99, &r.LatencyMs.P999, &r.LatencyMs.Max, &r.LatencyMs.Mean} {
		if math.IsNaN(*v) {
			*v = 0
		}
	}
	for i := range r.Cdf {
		if math.IsNaN(r.Cdf[i][0]) {
			r.Cdf[i][0] = 0
		}
	}
	out, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen-go:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
