//! Token broker protocol: request/response types shared by the App and its clients, and the policy.
