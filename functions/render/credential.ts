// Reading the credential parameter the runner fetched: which kind it is (an OpenVPN static key, or a TLS client
// certificate and key with the lab server's certificate), whether it is usable, and for TLS its parts, each
// in its own file. Never prints key material: openssl's own messages are discarded, ours name the problem.
import { KEYFILE_VARIABLES } from "./keyfile.ts";

/** The lines around a static key, as `openvpn --genkey secret` writes them. */
export const STATIC_KEY_BEGIN = "-----BEGIN OpenVPN Static key V1-----";
export const STATIC_KEY_END = "-----END OpenVPN Static key V1-----";
/** The blocks of a TLS credential, as in an .ovpn file's inline files. */
export const TLS_BLOCKS = ["ca", "cert", "key"] as const;

/** A TLS credential parameter's value (README "Credential parameters"). */
export const tlsCredentialText = (parts: {
  readonly serverCertificate: string;
  readonly clientCertificate: string;
  readonly clientKey: string;
  readonly port?: number;
}): string => {
  const block = (name: string, pem: string) => `<${name}>\n${pem.trim()}\n</${name}>`;
  return [
    ...(parts.port === undefined ? [] : [`# labgate port=${parts.port}`]),
    block("ca", parts.serverCertificate),
    block("cert", parts.clientCertificate),
    block("key", parts.clientKey),
    "",
  ].join("\n");
};

/**
 * Bash: parse_credential FILE DIR DEFAULT_PORT NAME checks the credential in FILE (named NAME in messages)
 * and sets CREDENTIAL_KIND (static-key or tls), TUNNEL_LOCAL, TUNNEL_REMOTE (static keys only), TUNNEL_PORT
 * and CREDENTIAL_SUMMARY (what the log may say); for TLS it leaves ca.pem, cert.pem and key.pem in DIR (a
 * private folder). Fails on anything NetworkManager could not use. Needs log and fail from the prelude, and
 * OPENVPN_REFUSES_STATIC_KEYS and OPENVPN_VERSION from the preflight.
 */
export const CREDENTIAL_FUNCTIONS = `# pem_block NAME FILE: the lines between <NAME> and </NAME>; fails unless there is exactly one such block.
pem_block() {
  awk -v start="<$1>" -v stop="</$1>" '
    { sub(/\\r$/, ""); sub(/[ \\t]+$/, "") }
    $0 == stop { inside = 0 }
    inside { print }
    $0 == start { inside = 1; n++ }
    END { exit n == 1 ? 0 : 1 }' "$2"
}

parse_credential() {
  local file=$1 dir=$2 default_port=$3 name=$4 line ipv4 static=0 tls=0 fingerprint subject
  ${KEYFILE_VARIABLES.local}="" ${KEYFILE_VARIABLES.remote}="" ${KEYFILE_VARIABLES.port}=$default_port CREDENTIAL_KIND="" CREDENTIAL_SUMMARY=""
  grep -qxF -- '${STATIC_KEY_BEGIN}' "$file" && grep -qxF -- '${STATIC_KEY_END}' "$file" && static=1
  grep -qE '^<(ca|cert|key)>' "$file" && tls=1
  if ((static && tls)); then
    fail "$name holds both a static key and TLS blocks: one credential, one kind (README \\"Credential parameters\\")"
  elif ((!static && !tls)); then
    fail "$name holds neither an OpenVPN static key (openvpn --genkey secret) nor a TLS credential (<ca>, <cert> and <key> blocks): see README \\"Credential parameters\\""
  fi
  line=$(grep -m 1 -E '^# labgate( |$)' "$file" || true)
  ipv4='((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'

  if ((static)); then
    CREDENTIAL_KIND='static-key'
    if ((OPENVPN_REFUSES_STATIC_KEYS)); then
      fail "$name holds a static key, which OpenVPN $OPENVPN_VERSION on this runner refuses, and NetworkManager's OpenVPN plugin cannot pass --allow-deprecated-insecure-static-crypto: give lab $LAB TLS credentials (README \\"Credential parameters\\")"
    fi
    if [[ ! $line =~ ^#\\ labgate\\ local=($ipv4)\\ remote=($ipv4)(\\ port=([1-9][0-9]{0,4}))?[[:space:]]*$ ]]; then
      fail "$name lacks the line '# labgate local=<tunnel local ip> remote=<tunnel remote ip> [port=<server port>]'"
    fi
    ${KEYFILE_VARIABLES.local}=\${BASH_REMATCH[1]}
    ${KEYFILE_VARIABLES.remote}=\${BASH_REMATCH[5]}
    # A lab may run one static-key server per client, each on its own port.
    ${KEYFILE_VARIABLES.port}=\${BASH_REMATCH[10]:-$default_port}
    CREDENTIAL_SUMMARY="static key; local $${KEYFILE_VARIABLES.local}, remote $${KEYFILE_VARIABLES.remote}"
  else
    CREDENTIAL_KIND=tls
    if [[ -n $line ]]; then
      [[ $line =~ ^#\\ labgate(\\ port=([1-9][0-9]{0,4}))?[[:space:]]*$ ]] ||
        fail "$name: a TLS credential's line may only be '# labgate port=<server port>' (the lab's server gives the tunnel its addresses)"
      ${KEYFILE_VARIABLES.port}=\${BASH_REMATCH[2]:-$default_port}
    fi
    pem_block ca "$file" >"$dir/ca.pem" || fail "$name needs exactly one <ca> block: the lab server's certificate"
    pem_block cert "$file" >"$dir/cert.pem" || fail "$name needs exactly one <cert> block: this client's certificate"
    (umask 077 && pem_block key "$file" >"$dir/key.pem") || fail "$name needs exactly one <key> block: this client's private key"
    if [[ $(grep -c -- '-----BEGIN CERTIFICATE-----' "$dir/ca.pem") != 1 ]] ||
      ! openssl x509 -in "$dir/ca.pem" -noout 2>/dev/null; then
      fail "$name: <ca> must hold exactly one certificate, the lab server's own"
    fi
    openssl x509 -in "$dir/cert.pem" -noout 2>/dev/null || fail "$name: <cert> is not a certificate"
    openssl pkey -in "$dir/key.pem" -passin pass: -noout </dev/null >/dev/null 2>&1 ||
      fail "$name: <key> is not a private key, or it is encrypted (NetworkManager would ask for its passphrase: store it unencrypted, the parameter is a SecureString)"
    cmp -s <(openssl x509 -in "$dir/cert.pem" -noout -pubkey 2>/dev/null) \\
      <(openssl pkey -in "$dir/key.pem" -pubout 2>/dev/null) ||
      fail "$name: <cert> and <key> do not belong together"
    # The pin: only the holder of the server certificate's key may pass as the lab's server. A CA that also
    # signs clients would let any client of the lab pose as its server.
    openssl verify -CAfile "$dir/ca.pem" "$dir/ca.pem" >/dev/null 2>&1 ||
      fail "$name: <ca> must be the lab server's own self-signed certificate"
    if openssl verify -CAfile "$dir/ca.pem" "$dir/cert.pem" >/dev/null 2>&1; then
      fail "$name: <ca> also signed this client's certificate, so any client of the lab could pose as its server: use the server's own self-signed certificate"
    fi
    openssl x509 -in "$dir/ca.pem" -noout -checkend 0 >/dev/null 2>&1 || fail "$name: the server certificate in <ca> has expired"
    openssl x509 -in "$dir/cert.pem" -noout -checkend 0 >/dev/null 2>&1 || fail "$name: the client certificate in <cert> has expired"
    fingerprint=$(openssl x509 -in "$dir/ca.pem" -noout -fingerprint -sha256 | sed 's/^[^=]*=//')
    subject=$(openssl x509 -in "$dir/cert.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
    CREDENTIAL_SUMMARY="TLS; client $subject, server certificate sha256 $fingerprint"
  fi
  ((${KEYFILE_VARIABLES.port} <= 65535)) || fail "$name names port $${KEYFILE_VARIABLES.port}, above 65535"
}`;
