"""PharmaCRM: customer relationship and customer service for pharmaceutical companies."""
