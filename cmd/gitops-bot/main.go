// Command gitops-bot is the GitHub and GitLab bot service of kubectl-gitops.
// This build only reports its version; the service arrives with the bot.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/kubectl-gitops/kubectl-gitops/internal/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		_ = json.NewEncoder(os.Stdout).Encode(version.Get())
		return
	}
	fmt.Fprintln(os.Stderr, "gitops-bot: only `gitops-bot version` is available in this build")
	os.Exit(2)
}
