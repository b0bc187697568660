// Command gitops-bot is the GitHub and GitLab bot service of kubectl-gitops:
// it reads its config, builds the forge clients and runs package bot until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"helm.sh/helm/v4/pkg/kube"

	"github.com/kubectl-gitops/kubectl-gitops/bot"
	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/github"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/gitlab"
	"github.com/kubectl-gitops/kubectl-gitops/internal/version"
)

func main() {
	// The render sandbox is this program, re-executed.
	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
		os.Exit(sandbox.Main())
	}
	// Helm's SDK applies as the program's name unless told otherwise; keep
	// Helm releases apart from kubectl-gitops's own field manager.
	kube.ManagedFieldsManager = cluster.HelmFieldManager
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		_ = json.NewEncoder(os.Stdout).Encode(version.Get())
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, os.Args[1:]); err != nil {
		log.Error("gitops-bot failed", "err", err.Error())
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	flags := flag.NewFlagSet("gitops-bot", flag.ContinueOnError)
	configPath := flags.String("config", "/etc/gitops-bot/config.yaml", "path of the bot's YAML config")
	if err := flags.Parse(args); err != nil {
		return err
	}
	cfg, err := bot.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	deps, err := dependencies(cfg, log)
	if err != nil {
		return err
	}
	deps.Logger = log
	state, err := bot.NewState(*cfg)
	if err != nil {
		return err
	}
	if state != nil {
		// Every replica takes webhooks; the leader reconciles. Leading
		// lasts until the Lease is lost or the bot stops.
		previewer := deps.Previewer.(*bot.Previewer)
		previewer.Locks, previewer.Identity, previewer.Records = state.Locks, state.Identity, state.Approvals
		deps.Leader, deps.JobLocks, deps.Identity = state.Elector, state.Locks, state.Identity
		deps.Deliveries = state.Deliveries
	}
	if cfg.Images != nil {
		updater, err := bot.NewImageUpdater(*cfg, state)
		if err != nil {
			return err
		}
		deps.Images = updater
	}
	b, err := bot.New(*cfg, deps)
	if err != nil {
		return err
	}
	// A preview that changes what another pull request's preview overlaps
	// with queues that one's refresh.
	deps.Previewer.(*bot.Previewer).Refresh = b.Refresh
	if u, ok := deps.Images.(*bot.ImageUpdater); ok {
		u.Refresh = b.Refresh
	}
	if state != nil {
		go func() {
			if err := state.Elector.Run(ctx, func(ctx context.Context) {
				log.Info("leading", "identity", state.Identity)
				b.ReconcileNow()
				<-ctx.Done()
				log.Info("no longer leading", "identity", state.Identity)
			}); err != nil {
				log.Error("leader election stopped", "err", err.Error())
			}
		}()
	}
	return b.Run(ctx)
}

// dependencies builds the forge clients and the previewer from cfg. The
// forge clients report their requests and rate-limit waits to the bot's
// metrics.
func dependencies(cfg *bot.Config, log *slog.Logger) (bot.Deps, error) {
	metrics := bot.NewMetrics()
	deps := bot.Deps{
		Parsers: map[scm.Kind]scm.WebhookParser{},
		Forges:  map[scm.Kind]scm.Forges{},
		Metrics: metrics,
	}
	if c := cfg.GitHub; c != nil {
		var key []byte
		if c.PrivateKeyFile != "" {
			k, err := os.ReadFile(c.PrivateKeyFile)
			if err != nil {
				return deps, fmt.Errorf("read the GitHub App private key: %w", err)
			}
			key = k
		}
		forges, err := github.New(github.Options{
			BaseURL:         c.BaseURL,
			AppID:           c.AppID,
			PrivateKey:      key,
			Token:           c.Token.Reveal(),
			Transport:       metrics.Transport(scm.GitHub, nil),
			OnRateLimitWait: metrics.RateLimitWait(scm.GitHub),
		})
		if err != nil {
			return deps, err
		}
		parser, err := github.NewWebhooks([]byte(c.WebhookSecret.Reveal()))
		if err != nil {
			return deps, err
		}
		deps.Forges[scm.GitHub], deps.Parsers[scm.GitHub] = forges, parser
	}
	if c := cfg.GitLab; c != nil {
		forges, err := gitlab.New(gitlab.Options{
			BaseURL:         c.BaseURL,
			Token:           c.Token.Reveal(),
			HTTPClient:      &http.Client{Transport: metrics.Transport(scm.GitLab, nil)},
			OnRateLimitWait: metrics.RateLimitWait(scm.GitLab),
		})
		if err != nil {
			return deps, err
		}
		parser, err := gitlab.NewWebhook(c.WebhookSecret.Reveal())
		if err != nil {
			return deps, err
		}
		deps.Forges[scm.GitLab], deps.Parsers[scm.GitLab] = forges, parser
	}
	previewer := bot.NewPreviewer(*cfg)
	previewer.Events = func(e bot.SyncEvent) {
		log.Info("event", "kind", e.Kind, "repo", e.Repo.String(), "app", e.App, "revision", e.Revision, "message", e.Message)
	}
	deps.Previewer, deps.Approver, deps.Syncer = previewer, previewer, previewer
	return deps, nil
}
