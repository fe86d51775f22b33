// What the two primitives of a replicated write cost Go's runtime (etcd's)
// on this machine: a message between two processes over loopback TCP, and a
// 4 KiB append made durable with fdatasync. bench/message-cost-node.ts does
// the same in Node; bench/message-cost.ts runs both and writes the report.
//
//	message-cost-go serve                       # echoes 100-byte messages; prints its port, then its CPU
//	message-cost-go ping -port P -n N -warmup W # W+N round trips; prints CPU and wall of the last N
//	message-cost-go disk -file F -n N -warmup W # W+N appends + fdatasync; prints CPU and wall of the last N
//
// Every measurement is printed as one JSON line: {"cpuUs":…,"wallUs":…,"n":…}.
// CPU is getrusage(RUSAGE_SELF): every thread of the process.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

const messageBytes = 100

type result struct {
	CPUUs  float64 `json:"cpuUs"`
	WallUs float64 `json:"wallUs"`
	N      int     `json:"n"`
}

func cpuUs() float64 {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		fail(err)
	}
	return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e3
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "message-cost-go:", err)
	os.Exit(1)
}

func report(c0 float64, t0 time.Time, n int) {
	out, _ := json.Marshal(result{CPUUs: cpuUs() - c0, WallUs: float64(time.Since(t0).Nanoseconds()) / 1e3, N: n})
	fmt.Println(string(out))
}

// serve echoes messages on one connection; it counts them and measures the
// CPU between the end of the warm-up and the last one.
func serve(n, warmup int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	conn, err := l.Accept()
	if err != nil {
		fail(err)
	}
	exchange(conn, n, warmup, false)
}

func ping(port, n, warmup int) {
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fail(err)
	}
	exchange(conn, n, warmup, true)
}

// exchange plays warmup+n rounds of ping-pong on conn, writing first when
// sendFirst (the client) and reading first otherwise (the server), and
// prints the CPU and wall of the last n.
func exchange(conn net.Conn, n, warmup int, sendFirst bool) {
	conn.(*net.TCPConn).SetNoDelay(true)
	buf := make([]byte, messageBytes)
	send := func() {
		if _, err := conn.Write(buf); err != nil {
			fail(err)
		}
	}
	receive := func() {
		if _, err := io.ReadFull(conn, buf); err != nil {
			fail(err)
		}
	}
	var c0 float64
	var t0 time.Time
	for i := 0; i < warmup+n; i++ {
		if i == warmup {
			c0, t0 = cpuUs(), time.Now()
		}
		if sendFirst {
			send()
			receive()
		} else {
			receive()
			send()
		}
	}
	report(c0, t0, n)
}

// disk appends 4 KiB records and makes each durable before the next, as a
// WAL does for one writer at a time.
func disk(file string, n, warmup int) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		fail(err)
	}
	defer os.Remove(file)
	rec := make([]byte, 4096)
	var c0 float64
	var t0 time.Time
	for i := 0; i < warmup+n; i++ {
		if i == warmup {
			c0, t0 = cpuUs(), time.Now()
		}
		if _, err := f.WriteAt(rec, int64(i)*4096); err != nil {
			fail(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			fail(err)
		}
	}
	report(c0, t0, n)
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: message-cost-go serve|ping|disk [flags]"))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	port := fs.Int("port", 0, "the server's port (ping)")
	n := fs.Int("n", 20000, "measured operations")
	warmup := fs.Int("warmup", 2000, "operations before the measurement")
	file := fs.String("file", "", "the file to append to (disk)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "serve":
		serve(*n, *warmup)
	case "ping":
		ping(*port, *n, *warmup)
	case "disk":
		disk(*file, *n, *warmup)
	default:
		fail(fmt.Errorf("unknown role %q", os.Args[1]))
	}
}
