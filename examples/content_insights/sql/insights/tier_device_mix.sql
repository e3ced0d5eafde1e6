-- Sessions and average completion per subscription tier and device, over all days.
SELECT
    subscription_tier,
    device,
    count(*)                        AS sessions,
    round(avg(completion_pct), 2)   AS avg_completion_pct
FROM gold.viewing_fact
GROUP BY subscription_tier, device
