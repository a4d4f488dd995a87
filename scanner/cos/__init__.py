"""COS: request signing (`signing`; TC3 for Tencent Cloud API 3.0 in `tc3`), the HTTP
transport shared with CI (`client`), bucket listing (`listing`), object operations
(`objects`) and XML (`xml`)."""
