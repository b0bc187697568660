package bot

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the bot's Prometheus series, on a registry of its own so
// several bots (tests) never share state.
type metrics struct {
	registry       *prometheus.Registry
	webhooks       *prometheus.CounterVec
	jobs           *prometheus.CounterVec
	jobDuration    *prometheus.HistogramVec
	queueDepth     prometheus.Gauge
	rateLimitWaits prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
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
	}
	m.registry.MustRegister(
		m.webhooks, m.jobs, m.jobDuration, m.queueDepth, m.rateLimitWaits,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
