package bot

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Metrics are the bot's Prometheus series, on a registry of their own so
// several bots (tests) never share state. New builds one unless Deps.Metrics
// hands one in; the caller does that to count the forge clients' requests
// and rate-limit waits (Transport, RateLimitWait), which it builds before
// the bot.
type Metrics struct {
	registry       *prometheus.Registry
	webhooks       *prometheus.CounterVec
	jobs           *prometheus.CounterVec
	jobDuration    *prometheus.HistogramVec
	queueDepth     prometheus.Gauge
	rateLimitWaits prometheus.Counter
	bodyBytes      prometheus.Gauge
	connections    prometheus.Gauge
	connsEvicted   prometheus.Counter

	forgeRequests    *prometheus.CounterVec
	forgeWaits       *prometheus.CounterVec
	forgeWaitSeconds *prometheus.CounterVec
}

// NewMetrics returns the bot's series on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitops_bot_webhooks_total",
			Help: "Webhook deliveries by provider, event kind and result.",
		}, []string{"provider", "event", "result"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitops_bot_jobs_total",
			Help: "Finished jobs by result.",
		}, []string{"result"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gitops_bot_job_duration_seconds",
			Help:    "Job run time by result.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}, []string{"result"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitops_bot_queue_depth",
			Help: "Jobs queued and not yet running.",
		}),
		rateLimitWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gitops_bot_rate_limit_waits_total",
			Help: "Jobs re-queued to wait for a forge rate limit to reset.",
		}),
		bodyBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitops_bot_webhook_body_bytes_in_flight",
			Help: "Bytes of the body budget (maxBodyBytesInFlight) held by webhook deliveries being read or handled.",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitops_bot_http_connections",
			Help: "Open HTTP connections (bounded by maxConnections).",
		}),
		connsEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gitops_bot_http_connections_evicted_total",
			Help: "Connections closed at the connection bound to admit a new one, oldest without a request in progress first.",
		}),
		forgeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitops_bot_forge_requests_total",
			Help: `Forge API requests by provider and response status class ("2xx" … "5xx", or "error" when no response came).`,
		}, []string{"provider", "code"}),
		forgeWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitops_bot_forge_rate_limit_waits_total",
			Help: "Waits inside a forge client for a rate limit to reset, by provider.",
		}, []string{"provider"}),
		forgeWaitSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitops_bot_forge_rate_limit_wait_seconds_total",
			Help: "Time forge clients chose to wait for rate limits to reset, by provider.",
		}, []string{"provider"}),
	}
	m.registry.MustRegister(
		m.webhooks, m.jobs, m.jobDuration, m.queueDepth, m.rateLimitWaits,
		m.bodyBytes, m.connections, m.connsEvicted,
		m.forgeRequests, m.forgeWaits, m.forgeWaitSeconds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Transport wraps base (http.DefaultTransport when nil) so that every
// request a forge client sends is counted in
// gitops_bot_forge_requests_total under provider. Hand it to the forge as
// its transport, below the client's own retries, so each attempt counts.
func (m *Metrics) Transport(provider scm.Kind, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &countingTransport{next: base, m: m, provider: string(provider)}
}

// RateLimitWait returns the forge option OnRateLimitWait for provider: it
// counts each wait and the time waited.
func (m *Metrics) RateLimitWait(provider scm.Kind) func(time.Duration) {
	return func(d time.Duration) {
		m.forgeWaits.WithLabelValues(string(provider)).Inc()
		m.forgeWaitSeconds.WithLabelValues(string(provider)).Add(max(d, 0).Seconds())
	}
}

type countingTransport struct {
	next     http.RoundTripper
	m        *Metrics
	provider string
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	t.m.forgeRequests.WithLabelValues(t.provider, statusClass(resp, err)).Inc()
	return resp, err
}

// statusClass keeps the code label's cardinality small: "2xx" … "5xx", or
// "error" for a request that got no response.
func statusClass(resp *http.Response, err error) string {
	if err != nil || resp == nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		return "error"
	}
	return strconv.Itoa(resp.StatusCode/100) + "xx"
}
