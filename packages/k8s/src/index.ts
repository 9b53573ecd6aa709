// k8s: public API (filled in by its issue)
export {};
