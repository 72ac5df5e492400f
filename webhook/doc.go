// Package webhook delivers lifecycle transitions and drift alerts to the
// receivers configured in experiments.Webhook: signed (HMAC-SHA256, see
// Sign and VerifySignature), retried with backoff, one queue and worker per
// receiver so a slow receiver delays nobody else, and never blocking the
// caller. Sender implements rollout's Notifier by shape and drift's alert
// callback.
//
// It imports drift for the Alert it carries, and must not import rollout,
// the recorder, the HTTP layers of abgate or a store implementation.
package webhook
