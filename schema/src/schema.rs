// @generated automatically by Diesel CLI.

diesel::table! {
    apps (id) {
        id -> Uuid,
        name -> Text,
        client_id -> Text,
        client_secret_hash -> Bytea,
        redirect_uris -> Array<Nullable<Text>>,
        settings -> Jsonb,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_requests (id) {
        id -> Uuid,
        app_id -> Uuid,
        kind -> Text,
        status -> Text,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Bytea>,
        http_status -> Nullable<Int2>,
        response -> Nullable<Jsonb>,
        response_sealed -> Nullable<Bytea>,
        retry_after -> Nullable<Int4>,
        attempts -> Int4,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Uuid,
        app_id -> Uuid,
        request_id -> Uuid,
        channel -> Text,
        destination -> Text,
        template -> Text,
        status -> Text,
        attempts -> Int4,
        provider -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        error_class -> Nullable<Text>,
        last_error -> Nullable<Text>,
        sealed_payload -> Nullable<Bytea>,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        attempt_base -> Int4,
    }
}

diesel::table! {
    delivery_attempts (delivery_id, attempt) {
        delivery_id -> Uuid,
        attempt -> Int4,
        provider -> Nullable<Text>,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        error -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
    }
}

diesel::table! {
    magic_links (id) {
        id -> Uuid,
        app_id -> Uuid,
        code_hash -> Bytea,
        subject -> Text,
        user_id -> Nullable<Uuid>,
        redirect_uri -> Text,
        state -> Nullable<Text>,
        create_new_user -> Bool,
        new_user_email -> Nullable<Text>,
        request_id -> Uuid,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    otp_challenges (id) {
        id -> Uuid,
        app_id -> Uuid,
        subject -> Text,
        user_id -> Nullable<Uuid>,
        channel -> Text,
        code_hash -> Nullable<Bytea>,
        code_length -> Int2,
        create_new_user -> Bool,
        new_user_email -> Nullable<Text>,
        new_user_phone_number -> Nullable<Text>,
        request_id -> Uuid,
        expires_at -> Timestamptz,
        failed_attempts -> Int4,
        locked_until -> Nullable<Timestamptz>,
        last_sent_at -> Timestamptz,
        window_started_at -> Timestamptz,
        sends_in_window -> Int4,
        consumed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    rate_limits (key, window_start) {
        key -> Text,
        window_start -> Timestamptz,
        count -> Int4,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        session_id -> Uuid,
        token_hash -> Bytea,
        parent_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        app_id -> Uuid,
        user_id -> Uuid,
        amr -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        last_authenticated_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        public_key -> Bytea,
        private_key_sealed -> Bytea,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
        unpublish_after -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        app_id -> Uuid,
        email -> Nullable<Text>,
        phone_number -> Nullable<Text>,
        username -> Nullable<Text>,
        external_user_id -> Nullable<Text>,
        status -> Text,
        email_verified_at -> Nullable<Timestamptz>,
        phone_number_verified_at -> Nullable<Timestamptz>,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(auth_requests -> apps (app_id));
diesel::joinable!(deliveries -> apps (app_id));
diesel::joinable!(delivery_attempts -> deliveries (delivery_id));
diesel::joinable!(magic_links -> apps (app_id));
diesel::joinable!(magic_links -> users (user_id));
diesel::joinable!(otp_challenges -> apps (app_id));
diesel::joinable!(otp_challenges -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> apps (app_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(users -> apps (app_id));

diesel::allow_tables_to_appear_in_same_query!(
    apps,
    auth_requests,
    deliveries,
    delivery_attempts,
    magic_links,
    otp_challenges,
    rate_limits,
    refresh_tokens,
    sessions,
    signing_keys,
    users,
);
