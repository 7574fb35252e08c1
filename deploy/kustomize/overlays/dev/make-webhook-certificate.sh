#!/usr/bin/env bash
# The dev overlay's webhook certificate, made once before `kubectl apply -k`: a CA and a serving certificate for
# the Service slimguard-webhook.slimguard.svc, written to certs/ beside this script (git ignores it). The overlay
# turns them into the Secret slimguard-webhook-tls and puts the CA into the ValidatingWebhookConfiguration's
# caBundle; without them `kubectl apply -k` fails naming the missing file. Valid 365 days: run again to renew
# (the webhook reloads a rotated certificate by itself). Needs openssl 1.1.1 or later.
set -euo pipefail

certs="$(cd "$(dirname "$0")" && pwd)/certs"
service=slimguard-webhook
namespace=slimguard
mkdir -p "$certs"
cd "$certs"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj "/CN=$service-ca" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$service.$namespace.svc" \
  -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
  "$service" "$service" "$namespace" "$service" "$namespace" "$service" "$namespace" >tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile tls.ext \
  -out tls.crt 2>/dev/null
rm -f tls.csr tls.ext ca.srl
echo "wrote $certs/{ca.crt,tls.crt,tls.key} for $service.$namespace.svc (ca.key too: keep it or delete it)"
