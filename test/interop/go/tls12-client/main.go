// tls12-client: Go's crypto/tls as a TLS 1.2 client for test/interop/tls12.test.ts: connects to a loopback
// server, sends an HTTP/1.0 GET, prints one line per connection with what was negotiated
// ("version=... suite=... resumed=..."), then the response body. With -resume it connects twice
// sharing a session cache, so the second connection may resume. With -cert and -key it presents
// that client certificate when the server asks for one.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"net"
	"strconv"
	"strings"
	"time"
)

var netDialer = net.Dialer{Timeout: 10 * time.Second}

func main() {
	addr := flag.String("addr", "", "host:port (loopback)")
	servername := flag.String("servername", "localhost", "SNI and name to verify")
	caFile := flag.String("ca", "", "PEM file of trusted CAs")
	suite := flag.String("suite", "", "TLS 1.2 cipher suite id in hex (e.g. c02b); empty: Go's defaults")
	curve := flag.String("curve", "", "x25519, P-256 or P-384; empty: Go's defaults")
	maxVersion := flag.String("max", "1.2", "highest version: 1.2 or 1.3")
	resume := flag.Bool("resume", false, "connect twice with a session cache")
	certFile := flag.String("cert", "", "PEM client certificate (with -key)")
	keyFile := flag.String("key", "", "PEM private key of -cert")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fail("no certificate in %s", *caFile)
	}
	cfg := &tls.Config{ServerName: *servername, RootCAs: pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		check(err)
		cfg.Certificates = []tls.Certificate{pair}
	}
	if *maxVersion == "1.3" {
		cfg.MaxVersion = tls.VersionTLS13
	}
	if *suite != "" {
		id, err := strconv.ParseUint(*suite, 16, 16)
		check(err)
		cfg.CipherSuites = []uint16{uint16(id)}
	}
	switch *curve {
	case "":
	case "x25519":
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	case "P-256":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	case "P-384":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP384}
	default:
		fail("unknown curve %s", *curve)
	}
	if *resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	}
	rounds := 1
	if *resume {
		rounds = 2
	}
	for i := 0; i < rounds; i++ {
		get(*addr, cfg)
	}
}

func get(addr string, cfg *tls.Config) {
	conn, err := tls.DialWithDialer(&netDialer, "tcp", addr, cfg)
	check(err)
	defer conn.Close()
	check(conn.SetDeadline(time.Now().Add(10 * time.Second)))
	st := conn.ConnectionState()
	fmt.Printf("version=%s suite=%s resumed=%v\n", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.DidResume)
	_, err = fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", cfg.ServerName)
	check(err)
	r := bufio.NewReader(conn)
	resp, err := io.ReadAll(r)
	check(err)
	if i := strings.Index(string(resp), "\r\n\r\n"); i >= 0 {
		fmt.Print(string(resp[i+4:]))
	}
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-tls-client: "+format+"\n", args...)
	os.Exit(1)
}
