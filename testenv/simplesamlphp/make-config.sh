#!/usr/bin/env bash
# Writes a SimpleSAMLphp (Debian package) IdP configuration into DIR, shaped like an Entra
# enterprise app: entity ID https://sts.windows.net/<tid>/, attribute names are Entra's claim
# URIs, RSA-SHA256. One remote SP per signing mode, named <SP_BASE>-{assertion,response,both,none}.
# Usage: [EXTRA_SP="entity|acs"] make-config.sh DIR PORT SP_BASE_ENTITY ACS_BASE_URL
#   ACS for mode M is ${ACS_BASE_URL}-M/acs, SLO ${ACS_BASE_URL}-M/slo.
set -euo pipefail
DIR=$1; PORT=$2; SP=$3; ACS=$4
TID=${TENANT_ID:-72f988bf-86f1-41af-91ab-2d7cd011db47}
mkdir -p "$DIR"/{metadata,cert,data,tmp,log,sessions}
[ -f "$DIR/cert/sp.key" ] || openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
  -subj "/CN=authgate-test-sp" -keyout "$DIR/cert/sp.key" -out "$DIR/cert/sp.crt" 2>/dev/null
[ -f "$DIR/cert/idp.key" ] || openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
  -subj "/CN=authgate-test-idp" -keyout "$DIR/cert/idp.key" -out "$DIR/cert/idp.crt" 2>/dev/null
cat > "$DIR/config.php" <<PHP
<?php
\$config = [
  'baseurlpath' => 'http://127.0.0.1:$PORT/',
  'certdir' => '$DIR/cert/', 'datadir' => '$DIR/data/', 'tempdir' => '$DIR/tmp/', 'loggingdir' => '$DIR/log/',
  'secretsalt' => 'authgate-test-salt-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')',
  'auth.adminpassword' => 'unused-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')',
  'admin.protectindexpage' => true, 'admin.protectmetadata' => false,
  'technicalcontact_email' => 'na@example.org', 'timezone' => 'UTC',
  'logging.level' => SimpleSAML\Logger::WARNING, 'logging.handler' => 'file', 'logging.logfile' => 'simplesamlphp.log',
  'enable.saml20-idp' => true, 'enable.shib13-idp' => false,
  'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => false],
  'store.type' => 'phpsession', 'session.phpsession.savepath' => '$DIR/sessions',
  'session.cookie.samesite' => 'Lax', 'session.cookie.secure' => false,
  'session.phpsession.cookiename' => 'SSP_SESSION', 'session.authtoken.cookiename' => 'SSP_AUTHTOKEN',
  'language.available' => ['en'], 'language.default' => 'en', 'theme.use' => 'default',
  'metadata.sources' => [['type' => 'flatfile', 'directory' => '$DIR/metadata']],
];
PHP
C=http://schemas.xmlsoap.org/ws/2005/05/identity/claims
M=http://schemas.microsoft.com/identity/claims
G=http://schemas.microsoft.com/ws/2008/06/identity/claims
cat > "$DIR/authsources.php" <<PHP
<?php
\$config = [
  'admin' => ['core:AdminPassword'],
  'entra-users' => ['exampleauth:UserPass',
    'alice:alice-pw' => [
      '$C/name' => ['alice@contoso.example'], '$C/emailaddress' => ['alice@contoso.example'],
      '$C/givenname' => ['Alice'], '$C/surname' => ['Example'], '$M/displayname' => ['Alice Example'],
      '$M/tenantid' => ['$TID'], '$M/objectidentifier' => ['00000000-0000-0000-66f3-3332eca7ea81'],
      '$G/groups' => ['6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1', 'c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11'],
      '$G/role' => ['Reader', 'Admin'],
    ],
    'bob:bob-pw' => [
      '$C/name' => ['bob@contoso.example'], '$C/emailaddress' => ['bob@contoso.example'],
      '$M/displayname' => ['Bob Example'], '$M/tenantid' => ['$TID'],
      '$M/objectidentifier' => ['00000000-0000-0000-a1c4-7f3e2b1d9c55'],
    ],
    // No object ID attribute: refused by an SP keyed on it, never keyed by the NameID.
    'nokey:nokey-pw' => [
      '$C/name' => ['nokey@contoso.example'], '$C/emailaddress' => ['nokey@contoso.example'],
      '$M/displayname' => ['No Key'], '$M/tenantid' => ['$TID'],
    ],
    // No object ID attribute, and a NameID equal to alice's object ID.
    'mallory:mallory-pw' => [
      '$C/emailaddress' => ['00000000-0000-0000-66f3-3332eca7ea81'],
      '$M/displayname' => ['Mallory'], '$M/tenantid' => ['$TID'],
    ],
    // Signed in with a second factor, as Entra says it in SAML (authnmethodsreferences), and
    // in Finance (a department claim under Entra's default namespace).
    'dana:dana-pw' => [
      '$C/name' => ['dana@contoso.example'], '$C/emailaddress' => ['dana@contoso.example'],
      '$M/displayname' => ['Dana Example'], '$M/tenantid' => ['$TID'],
      '$M/objectidentifier' => ['00000000-0000-0000-da4a-da4ada4ada4a'],
      '$C/department' => ['Finance'],
      'http://schemas.microsoft.com/claims/authnmethodsreferences' => [
        'http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password',
        'http://schemas.microsoft.com/claims/multipleauthn'],
    ],
    // Over 150 groups: Entra sends groups.link instead of the groups (ENTRA.md §9).
    'olivia:olivia-pw' => [
      '$C/name' => ['olivia@contoso.example'], '$C/emailaddress' => ['olivia@contoso.example'],
      '$M/displayname' => ['Olivia Overage'], '$M/tenantid' => ['$TID'],
      '$M/objectidentifier' => ['00000000-0000-0000-0011-0e1a0e1a0e1a'],
      'http://schemas.microsoft.com/claims/groups.link' => ['https://graph.windows.net/$TID/users/00000000-0000-0000-0011-0e1a0e1a0e1a/getMemberObjects'],
      '$G/role' => ['Reader'],
    ],
  ],
];
PHP
cat > "$DIR/metadata/saml20-idp-hosted.php" <<PHP
<?php
\$metadata['https://sts.windows.net/$TID/'] = [
  'host' => '__DEFAULT__', 'privatekey' => 'idp.key', 'certificate' => 'idp.crt',
  'auth' => 'entra-users',
  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
  'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  'simplesaml.nameidattribute' => '$C/emailaddress',
  'authproc' => [100 => ['class' => 'saml:AttributeNameID', 'attribute' => '$C/emailaddress',
    'Format' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress']],
];
PHP
{
  echo "<?php"
  for mode in assertion response both none; do
    case $mode in assertion) a=true; r=false;; response) a=false; r=true;; both) a=true; r=true;; none) a=false; r=false;; esac
    echo "\$metadata['$SP-$mode'] = ['AssertionConsumerService' => '$ACS-$mode/acs', 'SingleLogoutService' => '$ACS-$mode/slo',"
    echo "  'saml20.sign.assertion' => $a, 'saml20.sign.response' => $r,"
    echo "  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',"
    echo "  'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'];"
  done
  echo "\$metadata['$SP-signedreq'] = ['AssertionConsumerService' => '$ACS-signedreq/acs', 'SingleLogoutService' => '$ACS-signedreq/slo',"
  echo "  'saml20.sign.assertion' => true, 'validate.authnrequest' => true, 'certificate' => '$DIR/cert/sp.crt',"
  echo "  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',"
  echo "  'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'];"
  # EXTRA_SP="entity|acs": one more SP (the benchmark's mod_auth_mellon), assertion signed.
  if [ -n "${EXTRA_SP:-}" ]; then
    echo "\$metadata['${EXTRA_SP%%|*}'] = ['AssertionConsumerService' => '${EXTRA_SP#*|}',"
    echo "  'saml20.sign.assertion' => true, 'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',"
    echo "  'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'];"
  fi
} > "$DIR/metadata/saml20-sp-remote.php"
