//! IANA numbers for IKEv2, from the "Internet Key Exchange Version 2 (IKEv2)
//! Parameters" registry (https://www.iana.org/assignments/ikev2-parameters) and
//! the RFCs named next to each group. Plain `u8`/`u16` constants rather than
//! enums: the wire carries values we do not know, and the engine must be able to
//! hold, log and answer them.

/// Exchange types (RFC 7296 section 3.1, plus later RFCs).
pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
    /// RFC 5723.
    pub const IKE_SESSION_RESUME: u8 = 38;
    /// RFC 9838 (G-IKEv2).
    pub const GSA_AUTH: u8 = 39;
    pub const GSA_REGISTRATION: u8 = 40;
    pub const GSA_REKEY: u8 = 41;
    /// RFC 9242.
    pub const IKE_INTERMEDIATE: u8 = 43;
    /// RFC 9370.
    pub const IKE_FOLLOWUP_KE: u8 = 44;
}

/// Payload types (RFC 7296 section 3.2, RFC 7383 for SKF).
pub mod payload {
    pub const NO_NEXT_PAYLOAD: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR_ID: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    pub const CP: u8 = 47;
    pub const EAP: u8 = 48;
    /// RFC 6467 (not parsed here: treated as unknown).
    pub const GSPM: u8 = 49;
    /// RFC 7383.
    pub const SKF: u8 = 53;

    /// Human name, for logs and error messages.
    pub fn name(t: u8) -> &'static str {
        match t {
            NO_NEXT_PAYLOAD => "none",
            SA => "SA",
            KE => "KE",
            IDI => "IDi",
            IDR => "IDr",
            CERT => "CERT",
            CERTREQ => "CERTREQ",
            AUTH => "AUTH",
            NONCE => "Nonce",
            NOTIFY => "Notify",
            DELETE => "Delete",
            VENDOR_ID => "Vendor ID",
            TSI => "TSi",
            TSR => "TSr",
            SK => "SK",
            CP => "CP",
            EAP => "EAP",
            SKF => "SKF",
            _ => "unknown",
        }
    }
}

/// Header flags (RFC 7296 section 3.1).
pub mod flags {
    pub const INITIATOR: u8 = 0x08;
    pub const VERSION: u8 = 0x10;
    pub const RESPONSE: u8 = 0x20;
}

/// Security protocol identifiers (RFC 7296 section 3.3.1).
pub mod protocol {
    pub const IKE: u8 = 1;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
}

/// Transform types (RFC 7296 section 3.3.2; RFC 9370 for ADDKE1..7).
pub mod transform {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    /// Called "Diffie-Hellman group" in RFC 7296, "Key Exchange Method" since RFC 9370.
    pub const KE: u8 = 4;
    pub const ESN: u8 = 5;
    pub const ADDKE1: u8 = 6;
    pub const ADDKE2: u8 = 7;
    pub const ADDKE3: u8 = 8;
    pub const ADDKE4: u8 = 9;
    pub const ADDKE5: u8 = 10;
    pub const ADDKE6: u8 = 11;
    pub const ADDKE7: u8 = 12;
}

/// Transform attribute types (RFC 7296 section 3.3.5).
pub mod transform_attr {
    /// Key Length in bits; always TV format.
    pub const KEY_LENGTH: u16 = 14;
}

/// Identification types (RFC 7296 section 3.5; RFC 4595 FC_NAME, RFC 7619 NULL).
pub mod id {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const IPV6_ADDR: u8 = 5;
    pub const DER_ASN1_DN: u8 = 9;
    pub const DER_ASN1_GN: u8 = 10;
    pub const KEY_ID: u8 = 11;
    pub const FC_NAME: u8 = 12;
    pub const NULL: u8 = 13;
}

/// Certificate encodings (RFC 7296 section 3.6; RFC 7670 raw public key).
pub mod cert {
    pub const PKCS7_X509: u8 = 1;
    pub const PGP: u8 = 2;
    pub const DNS_SIGNED_KEY: u8 = 3;
    pub const X509_SIGNATURE: u8 = 4;
    pub const KERBEROS_TOKEN: u8 = 6;
    pub const CRL: u8 = 7;
    pub const ARL: u8 = 8;
    pub const SPKI: u8 = 9;
    pub const X509_ATTRIBUTE: u8 = 10;
    pub const RAW_RSA_KEY: u8 = 11;
    pub const HASH_URL_X509_CERT: u8 = 12;
    pub const HASH_URL_X509_BUNDLE: u8 = 13;
    /// RFC 4806.
    pub const OCSP_CONTENT: u8 = 14;
    /// RFC 7670.
    pub const RAW_PUBLIC_KEY: u8 = 15;
}

/// Authentication methods (RFC 7296 section 3.8; RFC 4754, 6467, 7619, 7427).
pub mod auth {
    pub const RSA_SIG: u8 = 1;
    pub const SHARED_KEY_MIC: u8 = 2;
    pub const DSS_SIG: u8 = 3;
    pub const ECDSA_SHA256_P256: u8 = 9;
    pub const ECDSA_SHA384_P384: u8 = 10;
    pub const ECDSA_SHA512_P521: u8 = 11;
    pub const GENERIC_SECURE_PASSWORD: u8 = 12;
    pub const NULL: u8 = 13;
    pub const DIGITAL_SIGNATURE: u8 = 14;
}

/// Notify message types (RFC 7296 section 3.10.1 and the IANA registry).
/// Values below 16384 are errors, 16384 and up are status types.
pub mod notify {
    /// First status type: anything below is an error (RFC 7296 section 3.10.1).
    pub const FIRST_STATUS: u16 = 16384;

    // Error types.
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    /// RFC 4555.
    pub const UNACCEPTABLE_ADDRESSES: u16 = 40;
    /// RFC 4555.
    pub const UNEXPECTED_NAT_DETECTED: u16 = 41;
    /// RFC 5026.
    pub const USE_ASSIGNED_HOA: u16 = 42;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// RFC 9838.
    pub const INVALID_GROUP_ID: u16 = 45;
    /// RFC 9838.
    pub const AUTHORIZATION_FAILED: u16 = 46;
    /// RFC 9370.
    pub const STATE_NOT_FOUND: u16 = 47;

    // Status types.
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const SET_WINDOW_SIZE: u16 = 16385;
    pub const ADDITIONAL_TS_POSSIBLE: u16 = 16386;
    pub const IPCOMP_SUPPORTED: u16 = 16387;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const HTTP_CERT_LOOKUP_SUPPORTED: u16 = 16392;
    pub const REKEY_SA: u16 = 16393;
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    /// RFC 4555.
    pub const MOBIKE_SUPPORTED: u16 = 16396;
    pub const ADDITIONAL_IP4_ADDRESS: u16 = 16397;
    pub const ADDITIONAL_IP6_ADDRESS: u16 = 16398;
    pub const NO_ADDITIONAL_ADDRESSES: u16 = 16399;
    pub const UPDATE_SA_ADDRESSES: u16 = 16400;
    pub const COOKIE2: u16 = 16401;
    pub const NO_NATS_ALLOWED: u16 = 16402;
    /// RFC 4478.
    pub const AUTH_LIFETIME: u16 = 16403;
    /// RFC 4739.
    pub const MULTIPLE_AUTH_SUPPORTED: u16 = 16404;
    pub const ANOTHER_AUTH_FOLLOWS: u16 = 16405;
    /// RFC 5685.
    pub const REDIRECT_SUPPORTED: u16 = 16406;
    pub const REDIRECT: u16 = 16407;
    pub const REDIRECTED_FROM: u16 = 16408;
    /// RFC 5723.
    pub const TICKET_LT_OPAQUE: u16 = 16409;
    pub const TICKET_REQUEST: u16 = 16410;
    pub const TICKET_ACK: u16 = 16411;
    pub const TICKET_NACK: u16 = 16412;
    pub const TICKET_OPAQUE: u16 = 16413;
    pub const LINK_ID: u16 = 16414;
    pub const USE_WESP_MODE: u16 = 16415;
    pub const ROHC_SUPPORTED: u16 = 16416;
    /// RFC 5998.
    pub const EAP_ONLY_AUTHENTICATION: u16 = 16417;
    /// RFC 6023.
    pub const CHILDLESS_IKEV2_SUPPORTED: u16 = 16418;
    pub const QUICK_CRASH_DETECTION: u16 = 16419;
    /// RFC 6311.
    pub const IKEV2_MESSAGE_ID_SYNC_SUPPORTED: u16 = 16420;
    pub const IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED: u16 = 16421;
    pub const IKEV2_MESSAGE_ID_SYNC: u16 = 16422;
    pub const IPSEC_REPLAY_COUNTER_SYNC: u16 = 16423;
    pub const SECURE_PASSWORD_METHODS: u16 = 16424;
    pub const PSK_PERSIST: u16 = 16425;
    pub const PSK_CONFIRM: u16 = 16426;
    pub const ERX_SUPPORTED: u16 = 16427;
    pub const IFOM_CAPABILITY: u16 = 16428;
    pub const SENDER_REQUEST_ID: u16 = 16429;
    /// RFC 7383.
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
    /// RFC 7427.
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;
    /// RFC 7791.
    pub const CLONE_IKE_SA_SUPPORTED: u16 = 16432;
    pub const CLONE_IKE_SA: u16 = 16433;
    /// RFC 8019.
    pub const PUZZLE: u16 = 16434;
    /// RFC 8784.
    pub const USE_PPK: u16 = 16435;
    pub const PPK_IDENTITY: u16 = 16436;
    pub const NO_PPK_AUTH: u16 = 16437;
    /// RFC 9242.
    pub const INTERMEDIATE_EXCHANGE_SUPPORTED: u16 = 16438;
    /// RFC 8983.
    pub const IP4_ALLOWED: u16 = 16439;
    pub const IP6_ALLOWED: u16 = 16440;
    /// RFC 9370.
    pub const ADDITIONAL_KEY_EXCHANGE: u16 = 16441;
    /// RFC 9347.
    pub const USE_AGGFRAG: u16 = 16442;

    /// True for error types (RFC 7296 section 3.10.1: 0..16383).
    pub fn is_error(t: u16) -> bool {
        t < FIRST_STATUS
    }
}

/// Traffic selector types (RFC 7296 section 3.13.1).
pub mod ts {
    pub const IPV4_ADDR_RANGE: u8 = 7;
    pub const IPV6_ADDR_RANGE: u8 = 8;
    /// RFC 4595; not parsed here (an error names it).
    pub const FC_ADDR_RANGE: u8 = 9;
}

/// Configuration payload types and attributes (RFC 7296 section 3.15).
pub mod cfg {
    pub const REQUEST: u8 = 1;
    pub const REPLY: u8 = 2;
    pub const SET: u8 = 3;
    pub const ACK: u8 = 4;

    pub const INTERNAL_IP4_ADDRESS: u16 = 1;
    pub const INTERNAL_IP4_NETMASK: u16 = 2;
    pub const INTERNAL_IP4_DNS: u16 = 3;
    pub const INTERNAL_IP4_NBNS: u16 = 4;
    pub const INTERNAL_IP4_DHCP: u16 = 6;
    pub const APPLICATION_VERSION: u16 = 7;
    pub const INTERNAL_IP6_ADDRESS: u16 = 8;
    pub const INTERNAL_IP6_DNS: u16 = 10;
    pub const INTERNAL_IP6_DHCP: u16 = 12;
    pub const INTERNAL_IP4_SUBNET: u16 = 13;
    pub const SUPPORTED_ATTRIBUTES: u16 = 14;
    pub const INTERNAL_IP6_SUBNET: u16 = 15;
    /// RFC 8598.
    pub const INTERNAL_DNS_DOMAIN: u16 = 25;
    pub const INTERNAL_DNSSEC_TA: u16 = 26;
}

/// EAP codes (RFC 3748 section 4).
pub mod eap {
    pub const REQUEST: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const SUCCESS: u8 = 3;
    pub const FAILURE: u8 = 4;
}
