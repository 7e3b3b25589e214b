from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('encore', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RegistrationAttempt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client_hash', fields.CharField(db_index=True, max_length=64)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'registration_attempt', 'app': 'encore', 'pk_attr': 'id', 'table_description': 'One registration request, counted per client for rate limiting (the address is hashed).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Registrant',
            name='join_token_sealed',
            field=fields.TextField(default='', unique=False),
        ),
        ops.AddField(
            model_name='Registrant',
            name='link_sends',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Registrant',
            name='link_sent_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Registrant',
            name='referrer',
            field=fields.CharField(default='', max_length=500),
        ),
        ops.AddField(
            model_name='Schedule',
            name='orphan_policy',
            field=fields.CharField(default='move', max_length=16),
        ),
        ops.AddField(
            model_name='Webinar',
            name='published_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Webinar',
            name='registration_rules',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
