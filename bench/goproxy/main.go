// The anchor of `make bench`: the signing proxy a user would write with Go's standard library
// instead of running gate-sidecar. httputil.ReverseProxy forwards every request to -upstream;
// its Director adds Gate's KEY, Timestamp and SIGN (HMAC-SHA512 of
// "METHOD\npath\nunescaped query\nhex(sha512(body))\ntimestamp", as the sidecar signs).
// The key and secret come from GATE_KEY and GATE_SECRET. No policy, no audit line, no metrics.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	upstream := flag.String("upstream", "https://api.gateio.ws", "Gate's base URL")
	caFile := flag.String("cafile", "", "CA certificate to trust for a TLS upstream")
	flag.Parse()
	key, secret := os.Getenv("GATE_KEY"), []byte(os.Getenv("GATE_SECRET"))
	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 128 // the default (2) would reconnect under load
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			log.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	forward := proxy.Director
	proxy.Director = func(r *http.Request) {
		forward(r)
		r.Host = target.Host
		var body []byte
		if r.Body != nil && r.ContentLength != 0 {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		bodyHash := sha512.Sum512(body)
		query, err := url.QueryUnescape(r.URL.RawQuery)
		if err != nil {
			query = r.URL.RawQuery
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha512.New, secret)
		mac.Write([]byte(r.Method + "\n" + r.URL.Path + "\n" + query + "\n" +
			hex.EncodeToString(bodyHash[:]) + "\n" + ts))
		r.Header.Set("KEY", key)
		r.Header.Set("Timestamp", ts)
		r.Header.Set("SIGN", hex.EncodeToString(mac.Sum(nil)))
	}
	log.Fatal(http.ListenAndServe(*listen, proxy))
}
