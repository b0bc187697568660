@echo off
rem kubectl's shell completion calls kubectl_complete-<plugin> for plugins;
rem hand the words to the plugin's cobra completion.
kubectl-gitops.exe __complete %*
